// Package clientkey groups client IP addresses into the keys that
// per-address limits count by: the MLLP listener's connection and rate
// limits (pkg/mllp) and the HTTP API's and console's throttling of failed
// authentication (pkg/api).
package clientkey

import (
	"net/netip"
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
	ip, err := netip.ParseAddr(remote)
	if err != nil {
		ap, err := netip.ParseAddrPort(remote)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
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
