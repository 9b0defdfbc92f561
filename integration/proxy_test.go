package integration

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpProxy forwards 127.0.0.1 connections to a target, can add latency
// (SetLatency), and imitates two kinds of network outage between the
// listener and PostgreSQL, each lasting until Restore:
//
//   - Cut closes every forwarded connection and refuses new ones (it
//     accepts and closes them at once, so the port stays ours): both ends
//     learn at once that their connections are gone, as when a firewall
//     resets them or a server's host reboots.
//   - Partition makes every open connection silently dead, for good: no
//     byte passes, and when one end gives up and closes, the other end is
//     never told (as when a stateful firewall or NAT loses its connection
//     table: later packets of those connections, the FIN included, are
//     dropped). New connections wait in SYN until Restore, then go through.
type tcpProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	done   chan struct{} // closed by close

	mu    sync.Mutex
	cut   bool
	gate  chan struct{} // closed while new connections may proceed
	pairs map[*proxyPair]struct{}
	wg    sync.WaitGroup
	once  sync.Once // for close

	// armed, when set, is closed by the partition that
	// PartitionInTransaction waits for.
	armed chan struct{}
	// latency delays every read from the target before it is passed on.
	latency atomic.Int64 // time.Duration
}

// proxyPair is one forwarded connection: the client's and ours to the
// target.
type proxyPair struct {
	client, server net.Conn
	dead           atomic.Bool // partitioned: drop everything, propagate nothing
}

func (pp *proxyPair) close() {
	pp.client.Close()
	if pp.server != nil {
		pp.server.Close()
	}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &tcpProxy{t: t, ln: ln, target: target, done: make(chan struct{}), gate: make(chan struct{}), pairs: map[*proxyPair]struct{}{}}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's address.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every forwarded connection and refuses new ones. When it
// returns, no byte can pass until Restore.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for pp := range p.pairs {
		pp.close()
	}
}

// Partition kills every open connection silently and holds new ones.
// When it returns, no byte can pass on any connection until Restore, and
// none on the connections open now ever again.
func (p *tcpProxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pp := range p.pairs {
		pp.dead.Store(true)
	}
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // already partitioned
	}
}

// PartitionInTransaction partitions the network, as Partition does, at
// the moment PostgreSQL reports to a client that it is inside a
// transaction (a ReadyForQuery message with status T), before the client
// sees it. The server is then left idle in a transaction that nobody will
// ever finish, holding its locks: the moment a random partition hits only
// sometimes. It returns when the partition happened, or false after d.
func (p *tcpProxy) PartitionInTransaction(d time.Duration) bool {
	p.mu.Lock()
	armed := make(chan struct{})
	p.armed = armed
	p.mu.Unlock()
	select {
	case <-armed:
		return true
	case <-time.After(d):
		p.mu.Lock()
		p.armed = nil
		p.mu.Unlock()
		return false
	}
}

// triggerInTransaction partitions if PartitionInTransaction is waiting.
func (p *tcpProxy) triggerInTransaction() bool {
	p.mu.Lock()
	armed := p.armed
	p.armed = nil
	p.mu.Unlock()
	if armed == nil {
		return false
	}
	p.Partition()
	close(armed)
	return true
}

// readyInTransaction is a PostgreSQL ReadyForQuery message whose
// transaction status is T: in a transaction block.
var readyInTransaction = []byte{'Z', 0, 0, 0, 5, 'T'}

// SetLatency makes the network slow: every piece of data from the target
// is held for d before it is passed on, as on a distant link.
func (p *tcpProxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Restore ends a Cut or a Partition (but the connections a partition
// killed stay dead).
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// accept runs until the listener is closed.
func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// forward pipes one client connection to the target until either side
// closes, Cut closes both, or the proxy closes.
func (p *tcpProxy) forward(client net.Conn) {
	defer p.wg.Done()
	pp := &proxyPair{client: client}
	if !p.waitGate() || !p.track(pp) {
		client.Close()
		return
	}
	defer p.untrack(pp)
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	pp.server = server
	cut := p.cut
	p.mu.Unlock()
	if cut {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, fromServer bool) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		var tail []byte // the end of the previous read, for a message split between reads
		for {
			n, err := src.Read(buf)
			if n > 0 && fromServer {
				seen := append(tail, buf[:n]...)
				if bytes.Contains(seen, readyInTransaction) {
					p.triggerInTransaction()
				}
				tail = append(tail[:0], seen[max(0, len(seen)-len(readyInTransaction)+1):]...)
			}
			if d := time.Duration(p.latency.Load()); n > 0 && fromServer && d > 0 {
				time.Sleep(d) // imitates the link, not a wait for anything
			}
			if n > 0 && !pp.dead.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if !pp.dead.Load() {
			// A close passes through, as on a healthy network.
			pp.close()
		}
	}
	go pipe(server, client, false)
	go pipe(client, server, true)
	<-done
	<-done
}

// waitGate waits while new connections are held; false when the proxy is
// closing.
func (p *tcpProxy) waitGate() bool {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	select {
	case <-g:
		return true
	case <-p.done:
		return false
	}
}

// track registers pp, or reports false when the network is cut.
func (p *tcpProxy) track(pp *proxyPair) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.pairs[pp] = struct{}{}
	return true
}

func (p *tcpProxy) untrack(pp *proxyPair) {
	p.mu.Lock()
	delete(p.pairs, pp)
	p.mu.Unlock()
	pp.close()
}

// close stops the proxy and closes every connection; it is idempotent.
func (p *tcpProxy) close() { p.once.Do(p.shut) }

func (p *tcpProxy) shut() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for pp := range p.pairs {
		pp.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
