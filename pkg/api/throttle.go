package api

import (
	"container/list"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/aortahealth/aorta/internal/clientkey"
)

// Throttling of failed authentication. Tokens hold 256 random bits, so
// guessing one is hopeless; what an unthrottled login costs is a hash and
// a database lookup per attempt, on the database the clinical pipeline
// shares. An AuthLimiter gives each client address (clientkey.Of: the
// IPv4 address, or the IPv6 /64) a token bucket that only failures
// drain; an address whose bucket is empty is answered 429 with
// Retry-After before its request is looked at, let alone looked up.
//
// The client is the TCP peer (http.Request.RemoteAddr), unless the peer
// is one of AuthLimiterConfig.TrustedProxies: then it is read from
// X-Forwarded-For, right to left, past the trusted proxies
// (clientkey.FromRequest). The header is read from no one else: any
// client can write it, and would pick a fresh address per request.
// Behind a reverse proxy that is not declared, every client has the
// proxy's address, and one client failing again and again (a script with
// a revoked token) throttles them all.

// Defaults of AuthLimiterConfig.
const (
	// DefaultAuthBurst is how many authentication failures one client
	// address may make before it is throttled. A person who pastes a
	// wrong, truncated or revoked token a few times, or a script started
	// with an old token, stays inside it and is never slowed; an address
	// that goes on failing is guessing or broken, and gets 429.
	DefaultAuthBurst = 10
	// DefaultAuthRefill is how long a throttled address waits for each
	// further attempt: 10 a minute, about 14,000 a day, a load on the
	// database nobody notices, against thousands a second unthrottled.
	// Short enough that a person who finds the right token is let in
	// within seconds, and a full bucket again a minute (10 x 6 s) after
	// the last failure, when the address is forgotten.
	DefaultAuthRefill = 6 * time.Second
	// DefaultAuthMaxClients bounds the addresses remembered, at about
	// 250 bytes each (2.5 MB). An address is remembered only from its
	// first failure until its bucket is full again, a minute at the
	// defaults, so reaching it takes 10,000 addresses failing within a
	// minute: a distributed scan.
	DefaultAuthMaxClients = 10_000

	// authWarnBurst and authWarnEvery bound the warning lines the limiter
	// writes (one per address as it becomes throttled, one per address
	// forgotten early), so that a scan from many addresses cannot flood
	// the log; the lines left out are counted in the next one.
	authWarnBurst = 10
	authWarnEvery = time.Minute
	// tokenSlack absorbs float rounding in the bucket's refill, so that a
	// client that waits exactly Retry-After is let in.
	tokenSlack = 1e-9
)

// AuthLimiterConfig configures an AuthLimiter. Zero fields take the
// defaults.
type AuthLimiterConfig struct {
	// Burst is how many failures an address may make before it is
	// throttled; zero means DefaultAuthBurst.
	Burst int
	// Refill is how often a throttled address earns one more attempt;
	// zero means DefaultAuthRefill.
	Refill time.Duration
	// MaxClients bounds the addresses remembered; zero means
	// DefaultAuthMaxClients. When it is reached the address whose last
	// failure is oldest is forgotten (see AuthLimiter).
	MaxClients int
	// Logger receives a warning when an address becomes throttled, and
	// when one is forgotten early because MaxClients was reached; at most
	// authWarnBurst lines, then one a minute. Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (router --api-trusted-proxies); none: the TCP peer is.
	TrustedProxies []netip.Prefix
}

// AuthLimiter throttles failed authentication per client address. One is
// shared by the API (bearer tokens refused with 401) and the console
// (failed logins), so that failures on either count together. It is safe
// for concurrent use.
//
// Only failures count: a request with a valid token takes nothing from
// its address's bucket, and a success refills nothing (not even its own
// address's: otherwise one valid token would let its holder guess
// without limit between successes). Every failure is charged, even one
// that passed Check concurrently with others just before the bucket ran
// out: the bucket then goes below zero and stays throttled until it is
// paid back, so over any period an address gets at most Burst plus one
// per Refill failed lookups.
//
// Memory is bounded: an address is remembered from its first failure
// until its bucket is full again, and at most MaxClients of them. When
// the table is full, the address whose last failure is oldest is
// forgotten (counted, and logged). The alternative, refusing addresses
// not yet in the table, would let anyone with enough addresses lock every
// client out of the API and the console, which for a clinical system is
// worse than the extra lookups: an attacker with more addresses than
// MaxClients gets Burst lookups per address either way, which no
// per-address limit can prevent.
type AuthLimiter struct {
	burst   int
	refill  time.Duration
	max     int
	log     *slog.Logger
	now     func() time.Time
	trusted []netip.Prefix
	warnLim *rate.Limiter

	mu         sync.Mutex
	clients    map[netip.Addr]*list.Element // of *authClient
	order      list.List                    // most recent failure first
	suppressed int                          // warnings left out since the last written

	throttled atomic.Uint64
	evicted   atomic.Uint64
}

// authClient is one remembered client address.
type authClient struct {
	key    netip.Addr
	bucket *rate.Limiter
	warned bool // the throttling of this address was logged
}

// NewAuthLimiter returns an AuthLimiter with cfg's limits.
func NewAuthLimiter(cfg AuthLimiterConfig) *AuthLimiter {
	l := &AuthLimiter{burst: orDefault(cfg.Burst, DefaultAuthBurst), refill: orDefault(cfg.Refill, DefaultAuthRefill),
		max: orDefault(cfg.MaxClients, DefaultAuthMaxClients), log: cfg.Logger, now: cfg.Now, trusted: cfg.TrustedProxies,
		warnLim: rate.NewLimiter(rate.Every(authWarnEvery), authWarnBurst),
		clients: map[netip.Addr]*list.Element{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// AuthLimiterStats are an AuthLimiter's counts since it was made.
type AuthLimiterStats struct {
	// Throttled counts requests answered 429.
	Throttled uint64
	// Evicted counts addresses forgotten before their bucket was full
	// again, because the table was full.
	Evicted uint64
	// Clients is how many addresses are remembered now.
	Clients int
}

// Stats returns the limiter's counts.
func (l *AuthLimiter) Stats() AuthLimiterStats {
	l.mu.Lock()
	n := len(l.clients)
	l.mu.Unlock()
	return AuthLimiterStats{Throttled: l.throttled.Load(), Evicted: l.evicted.Load(), Clients: n}
}

// Check reports whether r's client may try to authenticate. When it may
// not, the request is counted as throttled and retryAfter is how long the
// client should wait, in whole seconds (at least one), for Retry-After.
// Call it before reading the request's credentials.
func (l *AuthLimiter) Check(r *http.Request) (retryAfter time.Duration, ok bool) {
	key, _ := clientkey.FromRequest(r, l.trusted)
	return l.check(key, l.now())
}

// Client is the address r came from, past the trusted proxies, as audit
// rows record it; "" when RemoteAddr holds none.
func (l *AuthLimiter) Client(r *http.Request) string {
	if ip, ok := clientkey.ClientAddr(r, l.trusted); ok {
		return ip.String()
	}
	return ""
}

// Fail records that r's client failed to authenticate: a malformed,
// unknown or revoked token.
func (l *AuthLimiter) Fail(r *http.Request) {
	key, _ := clientkey.FromRequest(r, l.trusted)
	l.fail(key, l.now())
}

func (l *AuthLimiter) check(key netip.Addr, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	e, ok := l.clients[key]
	var tokens float64
	if ok {
		tokens = e.Value.(*authClient).bucket.TokensAt(now)
	}
	l.mu.Unlock()
	if !ok || tokens >= 1-tokenSlack {
		return 0, true
	}
	l.throttled.Add(1)
	return l.retryAfter(tokens), false
}

// retryAfter is how long until a bucket holding tokens holds one, in
// whole seconds, rounded up.
func (l *AuthLimiter) retryAfter(tokens float64) time.Duration {
	wait := (1 - tokens) * l.refill.Seconds()
	return time.Duration(max(1, math.Ceil(wait-tokenSlack))) * time.Second
}

func (l *AuthLimiter) fail(key netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetIdle(now)
	e, ok := l.clients[key]
	if ok {
		l.order.MoveToFront(e)
	} else {
		for len(l.clients) >= l.max {
			l.evictOldest(now)
		}
		e = l.order.PushFront(&authClient{key: key, bucket: rate.NewLimiter(rate.Every(l.refill), l.burst)})
		l.clients[key] = e
	}
	c := e.Value.(*authClient)
	// A reservation is never cancelled: it may take the bucket below
	// zero (see AuthLimiter).
	c.bucket.ReserveN(now, 1)
	if tokens := c.bucket.TokensAt(now); tokens < 1-tokenSlack && !c.warned {
		c.warned = true
		l.warn(now, "authentication: client address throttled after repeated failures; it gets 429 until its limit refills",
			"client", clientkey.String(key), "burst", l.burst, "refill", l.refill, "retry_after", l.retryAfter(tokens))
	}
}

// idle reports whether forgetting c at now changes nothing: its bucket is
// full again.
func (l *AuthLimiter) idle(c *authClient, now time.Time) bool {
	return c.bucket.TokensAt(now) >= float64(l.burst)-tokenSlack
}

// forgetIdle drops idle addresses from the end of the table, where the
// oldest failures are. Each address is dropped once, so the work is
// constant per failure on average. An idle address behind one still
// refilling waits until that one is idle too, or is evicted first at
// MaxClients; either way the table stays bounded.
func (l *AuthLimiter) forgetIdle(now time.Time) {
	for b := l.order.Back(); b != nil && l.idle(b.Value.(*authClient), now); b = l.order.Back() {
		l.remove(b)
	}
}

// evictOldest drops the address whose last failure is oldest, to make
// room; if it was not idle, that is counted and logged.
func (l *AuthLimiter) evictOldest(now time.Time) {
	b := l.order.Back()
	c := b.Value.(*authClient)
	if !l.idle(c, now) {
		l.evicted.Add(1)
		l.warn(now, "authentication: too many client addresses failing at once; forgot the one that failed longest ago before its limit refilled",
			"client", clientkey.String(c.key), "max_clients", l.max)
	}
	l.remove(b)
}

func (l *AuthLimiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*authClient).key)
	l.order.Remove(e)
}

// warn writes a warning unless too many have been written lately; the
// number left out is reported in the next one. l.mu is held.
func (l *AuthLimiter) warn(now time.Time, msg string, args ...any) {
	if !l.warnLim.AllowN(now, 1) {
		l.suppressed++
		return
	}
	l.log.Warn(msg, append(args, "warnings_suppressed", l.suppressed)...)
	l.suppressed = 0
}

// throttledError is a 429: the client's address failed to authenticate
// too often lately.
type throttledError struct{ retryAfter time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("too many failed authentication attempts from this address; try again in %d s", int(e.retryAfter/time.Second))
}
