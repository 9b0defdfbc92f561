// Package clientkey groups client IP addresses into the keys that
// per-address limits count by: the MLLP listener's connection and rate
// limits (pkg/mllp) and the HTTP API's and console's throttling of failed
// authentication (pkg/api).
package clientkey

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Of returns the key ip counts as: the address itself for IPv4 (an
// IPv4-mapped IPv6 address counts as the IPv4 address it maps, so one
// client is one key whether it reached a dual-stack socket or an IPv4
// one), and its /64 for IPv6, the smallest network a site is given and
// within which a host picks (and changes) addresses freely, so that a
// client cannot escape a limit by using more of them. A zone is dropped.
func Of(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}

// FromRemoteAddr returns the key of an http.Request's RemoteAddr, "ip:port"
// (or a bare IP). ok is false when it holds no IP address, as from a Unix
// socket listener; such clients all share the zero key.
func FromRemoteAddr(remote string) (key netip.Addr, ok bool) {
	ip, ok := addrOf(remote)
	if !ok {
		return netip.Addr{}, false
	}
	return Of(ip), true
}

// String shows a key in logs: the IPv4 address, the IPv6 network with
// its /64 ("2001:db8:1:2::/64"), or "unknown" for the zero key.
func String(key netip.Addr) string {
	switch {
	case !key.IsValid():
		return "unknown"
	case key.Is6():
		return key.String() + "/64"
	}
	return key.String()
}

// ParsePrefixes parses a comma-separated list of networks (CIDR) or single
// addresses, as a --trusted-proxies flag gives them; empty is none.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a network in CIDR notation", f)
		}
		ip = ip.Unmap().WithZone("")
		ps = append(ps, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return ps, nil
}

// FromRequest returns the key of the client that sent r. Without trusted
// proxies it is the TCP peer's. When the peer is a trusted proxy, the
// client is read from X-Forwarded-For, right to left (each proxy appends
// the address it received from), skipping the trusted proxies: the first
// address no trusted proxy vouches for is the client, whatever the client
// wrote further left. An entry that is not an address ends the walk at the
// last one that was, so a malformed header can only make the key the
// nearest proxy's, never an address of the sender's choosing.
func FromRequest(r *http.Request, trusted []netip.Prefix) (key netip.Addr, ok bool) {
	ip, ok := ClientAddr(r, trusted)
	return Of(ip), ok
}

// ClientAddr is the address FromRequest keys by, whole: the one to record
// (in an audit row, say). ok is false when RemoteAddr holds no address.
func ClientAddr(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	peer, ok := addrOf(r.RemoteAddr)
	if !ok || !contains(trusted, peer) {
		return peer, ok
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			ip, ok := addrOf(strings.TrimSpace(list[j]))
			if !ok {
				return client, true
			}
			client = ip
			if !contains(trusted, ip) {
				return client, true
			}
		}
	}
	return client, true
}

func addrOf(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), true
}

func contains(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
