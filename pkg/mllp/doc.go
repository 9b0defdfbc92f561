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
//	MaxFrameSize    payload larger than this           Stats.FramesTooLarge
//	IdleTimeout     no frame started for this long     Stats.IdleTimeouts
//	FrameTimeout    a started frame takes this long    Stats.FrameTimeouts
//	MaxDiscard      this many bytes between frames     Stats.GarbageClosed
//	WriteTimeout    a response takes this long to send Stats.WriteErrors
//	MaxConnections  this many already open             Stats.Refused
//
// The server never writes an HL7 reject for a limit: it has no HL7 to
// write one with, and a peer that broke the framing would not parse it.
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
