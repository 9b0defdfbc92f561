package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Framing bytes. An MLLP frame is StartBlock, the payload, then EndBlock
// followed by CarriageReturn.
const (
	// StartBlock (VT, 0x0B) opens a frame.
	StartBlock byte = 0x0B
	// EndBlock (FS, 0x1C) closes a frame when it is followed by CarriageReturn.
	EndBlock byte = 0x1C
	// CarriageReturn (CR, 0x0D) follows EndBlock to close a frame.
	CarriageReturn byte = 0x0D
)

// frameOverhead is the number of framing bytes around a payload.
const frameOverhead = 3

// readBufferSize is the size of the bufio buffer a Reader reads through.
// It bounds how far a Reader reads ahead of the frame it is returning, and
// it is the size of the chunks a large payload is copied in.
const readBufferSize = 16 << 10

// maxRetainedBuffer is the largest payload buffer a Reader keeps between
// frames for reuse. Payloads up to this size are copied out of the reused
// buffer; a larger buffer is handed to the caller and forgotten, so one
// large frame does not pin its memory for the life of a connection.
const maxRetainedBuffer = 64 << 10

var (
	// ErrFrameTooLarge is returned by ReadFrame when a payload exceeds the
	// Reader's maximum frame size. The Reader stops at that point; the
	// stream cannot be resynchronised and should be closed.
	ErrFrameTooLarge = errors.New("mllp: frame too large")

	// ErrInvalidPayload is returned by WriteFrame when the payload contains
	// the end-of-frame sequence 0x1C 0x0D, which a receiver would take as the
	// end of the frame.
	ErrInvalidPayload = errors.New("mllp: payload contains the end-of-frame sequence 0x1C 0x0D")

	// errTooMuchGarbage is returned by skipToStart when more bytes than
	// allowed arrive outside a frame.
	errTooMuchGarbage = errors.New("mllp: too many bytes outside a frame")
)

// endOfFrame is the two-byte sequence that closes a frame.
var endOfFrame = []byte{EndBlock, CarriageReturn}

// A Reader reads MLLP frames from a byte stream.
//
// Bytes that arrive outside a frame (before a StartBlock) are discarded
// and counted; see Discarded. Inside a frame every byte is payload until
// the sequence EndBlock CarriageReturn: an EndBlock not followed by
// CarriageReturn is payload, and so is a StartBlock (a second StartBlock
// does not restart the frame, so a sender that abandons a frame half-way
// and starts another produces one long frame, which the handler of the
// message then rejects as malformed).
//
// Errors are sticky: after ReadFrame returns an error, every later call
// returns the same error, because the position in the stream is lost.
// A Reader is not safe for concurrent use.
type Reader struct {
	br        *bufio.Reader
	max       int
	discarded int64
	scratch   []byte // reused payload buffer, at most maxRetainedBuffer
	err       error  // sticky error
}

// NewReader returns a Reader that reads frames from r and rejects payloads
// longer than maxFrameSize bytes with ErrFrameTooLarge. A maxFrameSize of
// zero or less means DefaultMaxFrameSize. The Reader buffers its input, so
// it may read past the last frame it returns.
func NewReader(r io.Reader, maxFrameSize int) *Reader {
	return newReaderSize(r, maxFrameSize, readBufferSize)
}

// newReaderSize is NewReader with a chosen bufio buffer size; tests use
// tiny buffers to exercise the paths where a payload spans many buffers.
func newReaderSize(r io.Reader, maxFrameSize, bufSize int) *Reader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, bufSize), max: maxFrameSize}
}

// Discarded reports the total number of bytes the Reader has discarded
// because they arrived outside a frame.
func (r *Reader) Discarded() int64 { return r.discarded }

// ReadFrame reads the next frame and returns its payload: the bytes between
// StartBlock and EndBlock CarriageReturn, in a new slice the caller may
// keep. An empty frame yields an empty, non-nil payload.
//
// At the end of the stream between frames ReadFrame returns io.EOF
// (bytes outside a frame before the end are discarded). If the stream
// ends inside a frame the error wraps io.ErrUnexpectedEOF. A payload
// longer than the maximum frame size yields an error wrapping
// ErrFrameTooLarge, after reading no more than the maximum plus one
// buffer of input.
func (r *Reader) ReadFrame() ([]byte, error) {
	if err := r.skipToStart(-1); err != nil {
		return nil, err
	}
	return r.readPayload()
}

// skipToStart discards input up to and including the next StartBlock.
// If limit is not negative and more than limit bytes precede the
// StartBlock, it returns errTooMuchGarbage as soon as the read that
// brought them returns. At the end of input it returns io.EOF.
func (r *Reader) skipToStart(limit int64) error {
	if r.err != nil {
		return r.err
	}
	var run int64 // bytes discarded in this call
	for {
		buf, err := r.buffered()
		if err == io.EOF {
			r.err = io.EOF
			return r.err
		}
		if err != nil {
			r.err = fmt.Errorf("mllp: waiting for the start of a frame: %w", err)
			return r.err
		}
		i := bytes.IndexByte(buf, StartBlock)
		n := i
		if i < 0 {
			n = len(buf)
		}
		r.discarded += int64(n)
		run += int64(n)
		if limit >= 0 && run > limit {
			r.err = fmt.Errorf("%w: more than %d bytes", errTooMuchGarbage, limit)
			return r.err
		}
		if i >= 0 {
			r.br.Discard(i + 1) // cannot fail: the bytes are buffered
			return nil
		}
		r.br.Discard(n)
	}
}

// readPayload reads the payload of a frame whose StartBlock has been
// consumed, through the EndBlock CarriageReturn that closes it. Input is
// examined as each read returns, so a payload over the limit is rejected
// as soon as its excess arrives, whatever the buffer size.
func (r *Reader) readPayload() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	payload := r.scratch[:0]
	for {
		buf, err := r.buffered()
		if err != nil {
			return nil, r.payloadErr(err, len(payload))
		}
		i := bytes.IndexByte(buf, EndBlock)
		if i < 0 {
			if len(payload)+len(buf) > r.max {
				return nil, r.tooLarge()
			}
			payload = append(r.grow(payload, len(buf)), buf...)
			r.br.Discard(len(buf))
			continue
		}
		// Everything before the EndBlock is payload; the EndBlock is
		// payload too unless CarriageReturn follows it.
		if len(payload)+i > r.max {
			return nil, r.tooLarge()
		}
		payload = append(r.grow(payload, i), buf[:i]...)
		r.br.Discard(i + 1)
		next, err := r.br.Peek(1)
		if err != nil {
			return nil, r.payloadErr(err, len(payload)+1)
		}
		if next[0] == CarriageReturn {
			r.br.Discard(1)
			return r.finish(payload), nil
		}
		if len(payload)+1 > r.max {
			return nil, r.tooLarge()
		}
		payload = append(r.grow(payload, 1), EndBlock)
	}
}

// minPayloadBuffer is the smallest payload buffer a Reader allocates.
const minPayloadBuffer = 512

// grow returns p with room for n more bytes. Capacity doubles, as append's
// does for small slices, but also for large ones (append grows them by
// about a quarter, which copies a large payload several times over), and
// never beyond the maximum frame size. The caller has checked that
// len(p)+n is within that maximum.
func (r *Reader) grow(p []byte, n int) []byte {
	need := len(p) + n
	if need <= cap(p) {
		return p
	}
	c := max(2*cap(p), need, minPayloadBuffer)
	c = 1 << bits.Len(uint(c-1)) // a power of two, so doubling keeps fitting
	c = min(c, r.max)            // still at least need
	np := make([]byte, len(p), c)
	copy(np, p)
	return np
}

// buffered returns the bytes buffered and not yet consumed, reading once
// from the underlying reader if there are none. The slice is valid until
// the next read from r.br.
func (r *Reader) buffered() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, err
		}
	}
	return r.br.Peek(r.br.Buffered())
}

// finish returns the payload in buf as a slice the caller owns, keeping
// buf for reuse if it is small.
func (r *Reader) finish(buf []byte) []byte {
	if cap(buf) > maxRetainedBuffer {
		r.scratch = nil
		return buf[:len(buf):len(buf)] // buf is not nil: it outgrew the scratch
	}
	r.scratch = buf[:0]
	out := make([]byte, len(buf)) // non-nil even for an empty frame
	copy(out, buf)
	return out
}

func (r *Reader) tooLarge() error {
	r.scratch = nil
	r.err = fmt.Errorf("%w: payload longer than %d bytes", ErrFrameTooLarge, r.max)
	return r.err
}

// payloadErr records a read error that happened n bytes into a payload.
func (r *Reader) payloadErr(err error, n int) error {
	r.scratch = nil
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	r.err = fmt.Errorf("mllp: reading frame, %d bytes into the payload: %w", n, err)
	return r.err
}

// WriteFrame writes payload to w as one frame, in a single call to
// w.Write so that the frame is never split by other writes to w. It
// returns ErrInvalidPayload, writing nothing, if payload contains the
// sequence EndBlock CarriageReturn.
func WriteFrame(w io.Writer, payload []byte) error {
	buf, err := appendFrame(make([]byte, 0, len(payload)+frameOverhead), payload)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("mllp: writing frame: %w", err)
	}
	return nil
}

// appendFrame appends payload, framed, to dst.
func appendFrame(dst, payload []byte) ([]byte, error) {
	if bytes.Contains(payload, endOfFrame) {
		return dst, ErrInvalidPayload
	}
	dst = append(dst, StartBlock)
	dst = append(dst, payload...)
	return append(dst, EndBlock, CarriageReturn), nil
}
