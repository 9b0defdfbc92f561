package mllp

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/aortahealth/aorta/internal/clientkey"
)

// This file holds what the Server knows about senders by their address:
// the allow-list, and the connection count and rate limiter each remote IP
// address shares across its connections.

// minPeerSweep is the size the peer table may reach before the first sweep
// of entries that no longer matter. Sweeps are amortised: the next one
// comes when the table has doubled since the last.
const minPeerSweep = 64

// remoteIP returns the IP address of a connection's remote end, with an
// IPv4-mapped IPv6 address turned into the IPv4 address it maps, so that
// one sender is one key whether it reached a dual-stack listener or an
// IPv4 one. ok is false for an address that is not IP (a Unix socket).
func remoteIP(a net.Addr) (ip netip.Addr, ok bool) {
	if ta, isTCP := a.(*net.TCPAddr); isTCP {
		ip, ok = netip.AddrFromSlice(ta.IP)
	} else if a != nil {
		ap, err := netip.ParseAddrPort(a.String())
		ip, ok = ap.Addr(), err == nil
	}
	if !ok {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// allowList is the set of networks connections are accepted from. A nil
// *allowList accepts every address.
type allowList struct {
	nets []netip.Prefix
}

// newAllowList normalises nets: an IPv4-mapped IPv6 prefix of /96 or
// longer becomes the IPv4 prefix it maps (remote addresses are unmapped
// too), and host bits are cleared. It returns nil when nets is empty.
func newAllowList(nets []netip.Prefix) *allowList {
	if len(nets) == 0 {
		return nil
	}
	l := &allowList{nets: make([]netip.Prefix, 0, len(nets))}
	for _, p := range nets {
		if !p.IsValid() {
			continue // matches nothing
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		l.nets = append(l.nets, p.Masked())
	}
	return l
}

// admits reports whether a connection from ip may be served. isIP is
// false when the remote address is not an IP address, which a non-empty
// list never admits.
func (l *allowList) admits(ip netip.Addr, isIP bool) bool {
	if l == nil {
		return true
	}
	if !isIP {
		return false
	}
	for _, p := range l.nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// String lists the networks, comma-separated; "" for every address.
func (l *allowList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(l.nets))
	for i, p := range l.nets {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// peer is what the Server tracks for one remote IP address while it has
// connections open, and, when rate limiting, until its limiter has filled
// up again (forgetting it earlier would let a sender that connects once
// per message escape the limit).
type peer struct {
	conns   int           // open connections; guarded by Server.mu
	limiter *rate.Limiter // nil without RateLimit; safe for concurrent use
}

// idle reports whether forgetting p at now changes nothing: it has no
// connection, and its limiter, if any, is full.
func (p *peer) idle(now time.Time) bool {
	return p.conns == 0 && (p.limiter == nil || p.limiter.TokensAt(now) >= float64(p.limiter.Burst()))
}

// peerTable maps remote addresses (by peerKey) to their peer. It is
// guarded by Server.mu.
type peerTable struct {
	m       map[netip.Addr]*peer
	sweepAt int // sweep idle entries when the table reaches this size
}

func newPeerTable() peerTable {
	return peerTable{m: make(map[netip.Addr]*peer), sweepAt: minPeerSweep}
}

// peerKey is the sender ip counts as for the per-address limits: itself
// for IPv4, its /64 for IPv6, the smallest network a site is given and
// within which a host picks (and changes) addresses freely, so that a
// sender cannot escape MaxConnsPerIP or RateLimit by using more of them.
// The HTTP API groups clients the same way (clientkey.Of).
func peerKey(ip netip.Addr) netip.Addr { return clientkey.Of(ip) }

// get returns ip's peer, creating it if needed. Before growing the table
// past sweepAt it drops the idle entries, so the table holds at most
// about twice the addresses that are connected or being rate limited.
func (t *peerTable) get(ip netip.Addr, cfg config, now time.Time) *peer {
	ip = peerKey(ip)
	if p, ok := t.m[ip]; ok {
		return p
	}
	if len(t.m) >= t.sweepAt {
		for a, p := range t.m {
			if p.idle(now) {
				delete(t.m, a)
			}
		}
		t.sweepAt = max(2*len(t.m), minPeerSweep)
	}
	p := &peer{}
	if cfg.rateLimit > 0 {
		p.limiter = rate.NewLimiter(rate.Limit(cfg.rateLimit), cfg.rateBurst)
	}
	t.m[ip] = p
	return p
}

// release records that one of ip's connections closed, and forgets p at
// once if nothing about it needs remembering.
func (t *peerTable) release(ip netip.Addr, p *peer) {
	p.conns--
	if p.conns == 0 && p.limiter == nil {
		delete(t.m, peerKey(ip))
	}
}

// waitForRate waits until the connection's sender may have one more frame
// read under RateLimit. It returns false if the connection must close
// instead: because the wait would exceed RateLimitMaxWait (counted), or
// because the Server is closing. Either way nothing of the frame has been
// handled, so its sender will send it again.
func (c *conn) waitForRate() bool {
	if c.peer == nil || c.peer.limiter == nil {
		return true
	}
	s := c.srv
	now := time.Now()
	r := c.peer.limiter.ReserveN(now, 1)
	if !r.OK() {
		return true // cannot happen: the burst is at least 1
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return true
	}
	if c.cfg.rateMaxWait >= 0 && d > c.cfg.rateMaxWait {
		r.CancelAt(now)
		s.stats.rateLimitClosed.Add(1)
		c.log.Warn("mllp: rate limit would delay the frame too long; closing unanswered",
			"rate_limit", c.cfg.rateLimit, "rate_burst", c.cfg.rateBurst,
			"delay", d, "rate_limit_max_wait", c.cfg.rateMaxWait)
		return false
	}
	s.stats.rateLimited.Add(1)
	c.log.Debug("mllp: rate limit: frame waits", "delay", d)
	t := time.NewTimer(d)
	select {
	case <-t.C:
		s.stats.rateLimitWait.Add(int64(d))
		return true
	case <-s.done:
		t.Stop()
		r.Cancel()
		return false
	}
}
