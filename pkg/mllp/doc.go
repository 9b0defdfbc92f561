// Package mllp implements the Minimal Lower Layer Protocol, the framing
// that carries HL7 version 2 messages over TCP: a frame reader and writer,
// a server that hands each frame to a Handler and writes back its
// response, and a small client for tests and tools.
//
// # Framing
//
// A frame is a start byte, the payload, and a two-byte end sequence:
//
//	0x0B  payload ...  0x1C 0x0D
//	VT                 FS   CR
//
// The package does not look inside the payload; parsing HL7 and building
// acknowledgements belong to the caller. [Reader] is deliberately
// lenient about what it accepts: bytes before a start byte are dropped and
// counted, and inside a frame every byte is payload until 0x1C 0x0D, so a
// payload may hold 0x0B, a lone 0x1C, and any other byte. [WriteFrame]
// writes a frame in a single Write.
//
// # Server
//
// [Server] serves each connection in one goroutine that reads a frame,
// calls the [Handler], writes the response, and only then reads the next
// frame. The messages of one connection are therefore handled in the
// order they were sent, even when the peer sends several without waiting
// for the acknowledgements.
//
// A handler that returns an error gets no response written and its
// connection closed. This is how a receiver refuses responsibility for a
// message it could not store: the sender sees the connection drop without
// an acknowledgement and sends the message again. A handler that returns
// an empty response gets nothing written.
//
// # Limits
//
// Every input limit has a named default (see the Default constants) and
// a Server field to change it. Going over a limit closes the connection
// and increments the counter of that reason in [Stats]:
//
//	MaxFrameSize      payload larger than this            Stats.FramesTooLarge
//	IdleTimeout       no frame started for this long      Stats.IdleTimeouts
//	FrameTimeout      a started frame takes this long     Stats.FrameTimeouts
//	MaxDiscard        this many bytes between frames      Stats.GarbageClosed
//	WriteTimeout      a response takes this long to send  Stats.WriteErrors
//	MaxConnections    this many already open              Stats.Refused
//	HandshakeTimeout  a TLS handshake takes this long     Stats.TLSHandshakeErrors
//
// The server never writes an HL7 reject for a limit: it has no HL7 to
// write one with, and a peer that broke the framing would not parse it.
//
// # Senders
//
// Three further limits apply per remote IP address, and are off unless
// set, as legacy senders expect:
//
//	AllowedNets       address outside every network       Stats.Denied
//	MaxConnsPerIP     this many open from the address     Stats.PerIPRefused
//	RateLimit         frames per second from the address  Stats.RateLimited
//
// A connection refused by the first two is closed as soon as it is
// accepted, before anything is read. RateLimit does not refuse: it is
// back-pressure. Once a frame's start byte has arrived, the server waits
// for the address's token bucket before reading the rest, so the sender
// sees a slower acknowledgement (and TCP holds back what it sends next),
// never a reject that many senders would take as a reason to park the
// message. Only when the wait would exceed RateLimitMaxWait is the
// connection closed unanswered (Stats.RateLimitClosed); as with any close
// before the acknowledgement, the sender resends, so no message is lost
// or acknowledged without being handled.
//
// # TLS
//
// With [Server.TLSConfig] set, every connection completes a TLS handshake
// (TLS 1.2 or later, whatever the configuration says) within
// HandshakeTimeout before its first frame is read, and the handler sees
// the TLS state, including a client's verified certificate, in
// [ConnInfo]. [TLSReloader] provides that configuration from PEM files
// and re-reads them when they change, so a renewed certificate is served
// without a restart; with a client CA file it requires client
// certificates (mutual TLS). [DialTLS] is the client side.
//
// # Shutdown
//
// [Server.Shutdown] stops accepting, closes at once the connections that
// are waiting for or receiving a frame (none of their frames was
// acknowledged, so the senders will resend them), lets handlers that are
// running finish and write their responses, and waits for every
// goroutine. Handlers' contexts are cancelled only by [Server.Close] or
// when Shutdown's context expires, so that a message being stored when
// shutdown begins is still stored and acknowledged.
package mllp
