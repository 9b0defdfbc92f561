package mllp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// frame returns payload framed, as a string.
func frame(payload string) string {
	return "\x0b" + payload + "\x1c\x0d"
}

// readAll reads frames from r until an error, which it returns.
func readAll(r *Reader, limit int) ([]string, error) {
	var frames []string
	for range limit + 1 { // each frame consumes at least 3 bytes
		p, err := r.ReadFrame()
		if err != nil {
			return frames, err
		}
		frames = append(frames, string(p))
	}
	return frames, errors.New("readAll: too many frames")
}

// errClass names the kind of error a reader ended with, for comparing
// outcomes whose messages differ only in byte offsets.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "ErrUnexpectedEOF"
	case errors.Is(err, ErrFrameTooLarge):
		return "ErrFrameTooLarge"
	default:
		return "other: " + err.Error()
	}
}

var readerCases = []struct {
	name          string
	in            string
	max           int
	want          []string
	wantErr       error // io.EOF, io.ErrUnexpectedEOF or ErrFrameTooLarge
	wantDiscarded int64
}{
	{name: "empty input", in: "", want: nil, wantErr: io.EOF},
	{name: "one frame", in: frame("MSH|^~\\&|A"), want: []string{"MSH|^~\\&|A"}, wantErr: io.EOF},
	{name: "empty frame", in: frame(""), want: []string{""}, wantErr: io.EOF},
	{
		name:    "back to back",
		in:      frame("one") + frame("two") + frame("three"),
		want:    []string{"one", "two", "three"},
		wantErr: io.EOF,
	},
	{
		name:    "segments separated by CR",
		in:      frame("MSH|a\rPID|b\r"),
		want:    []string{"MSH|a\rPID|b\r"},
		wantErr: io.EOF,
	},
	{
		name:          "garbage before",
		in:            "hello\r\n" + frame("x"),
		want:          []string{"x"},
		wantErr:       io.EOF,
		wantDiscarded: 7,
	},
	{
		name:          "garbage between and after",
		in:            frame("a") + "\n" + "\r\n" + frame("b") + "\n",
		want:          []string{"a", "b"},
		wantErr:       io.EOF,
		wantDiscarded: 4,
	},
	{
		name:          "only garbage",
		in:            "GET / HTTP/1.1\r\n\r\n",
		wantErr:       io.EOF,
		wantDiscarded: 18,
	},
	{
		name:          "stray end sequence outside a frame is garbage",
		in:            "\x1c\x0d" + frame("a"),
		want:          []string{"a"},
		wantErr:       io.EOF,
		wantDiscarded: 2,
	},
	{
		name:    "FS not followed by CR is payload",
		in:      frame("a\x1cb") + frame("\x1c") + frame("c\x1c\x1c"),
		want:    []string{"a\x1cb", "\x1c", "c\x1c\x1c"},
		wantErr: io.EOF,
	},
	{
		name:    "FS followed by LF is payload",
		in:      frame("a\x1c\nb"),
		want:    []string{"a\x1c\nb"},
		wantErr: io.EOF,
	},
	{
		name:    "VT inside a frame is payload",
		in:      "\x0bab\x0bcd\x1c\x0d",
		want:    []string{"ab\x0bcd"},
		wantErr: io.EOF,
	},
	{
		name:    "non-ASCII bytes",
		in:      frame("PID|Müller^Zoë\xa0|\xff\x00"),
		want:    []string{"PID|Müller^Zoë\xa0|\xff\x00"},
		wantErr: io.EOF,
	},
	{
		name:    "CR alone does not end a frame",
		in:      frame("a\rb\r\r"),
		want:    []string{"a\rb\r\r"},
		wantErr: io.EOF,
	},
	{
		name:    "size exactly max",
		in:      frame("0123456789") + frame("x"),
		max:     10,
		want:    []string{"0123456789", "x"},
		wantErr: io.EOF,
	},
	{
		name:    "size max plus one",
		in:      frame("0123456789a") + frame("x"),
		max:     10,
		wantErr: ErrFrameTooLarge,
	},
	{
		name:    "size max plus one because of a trailing FS",
		in:      frame("0123456789\x1c"),
		max:     10,
		wantErr: ErrFrameTooLarge,
	},
	{
		name:    "too large after good frames",
		in:      frame("ok") + frame("0123456789a") + frame("never"),
		max:     10,
		want:    []string{"ok"},
		wantErr: ErrFrameTooLarge,
	},
	{
		name:    "too large without end",
		in:      "\x0b" + strings.Repeat("z", 50),
		max:     10,
		wantErr: ErrFrameTooLarge,
	},
	{
		name:    "EOF after start byte",
		in:      frame("a") + "\x0b",
		want:    []string{"a"},
		wantErr: io.ErrUnexpectedEOF,
	},
	{
		name:    "EOF mid payload",
		in:      "\x0bMSH|",
		wantErr: io.ErrUnexpectedEOF,
	},
	{
		name:    "EOF after FS",
		in:      "\x0bMSH|\x1c",
		wantErr: io.ErrUnexpectedEOF,
	},
	{
		name:    "large frames beyond the retained buffer",
		in:      frame(strings.Repeat("A", 3*maxRetainedBuffer)) + frame("small") + frame(strings.Repeat("B", maxRetainedBuffer+1)),
		want:    []string{strings.Repeat("A", 3*maxRetainedBuffer), "small", strings.Repeat("B", maxRetainedBuffer+1)},
		wantErr: io.EOF,
	},
}

// splitReader returns its input in two reads, split at n.
func splitReader(in []byte, n int) io.Reader {
	return io.MultiReader(bytes.NewReader(in[:n]), bytes.NewReader(in[n:]))
}

// checkRead reads all frames from r and compares them with the case.
func checkRead(t *testing.T, how string, r *Reader, in string, want []string, wantErr error, wantDiscarded int64) {
	t.Helper()
	got, err := readAll(r, len(in))
	if !equalFrames(got, want) {
		t.Errorf("%s: frames = %s, want %s", how, showFrames(got), showFrames(want))
	}
	if errClass(err) != errClass(wantErr) {
		t.Errorf("%s: error = %v, want %v", how, err, wantErr)
	}
	if wantErr != ErrFrameTooLarge && r.Discarded() != wantDiscarded {
		t.Errorf("%s: Discarded() = %d, want %d", how, r.Discarded(), wantDiscarded)
	}
}

func equalFrames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// showFrames formats frames briefly, eliding long ones.
func showFrames(frames []string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, f := range frames {
		if i > 0 {
			b.WriteString(" ")
		}
		if len(f) > 40 {
			fmt.Fprintf(&b, "%q...(%d bytes)", f[:20], len(f))
		} else {
			fmt.Fprintf(&b, "%q", f)
		}
	}
	b.WriteString("]")
	return b.String()
}

func TestReader(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			readers := []struct {
				how string
				r   *Reader
			}{
				{"whole", NewReader(bytes.NewReader(in), tc.max)},
				{"one byte at a time", NewReader(iotest.OneByteReader(bytes.NewReader(in)), tc.max)},
				{"half reads", NewReader(iotest.HalfReader(bytes.NewReader(in)), tc.max)},
				{"data with EOF", NewReader(iotest.DataErrReader(bytes.NewReader(in)), tc.max)},
				{"16-byte buffer", newReaderSize(bytes.NewReader(in), tc.max, 16)},
				{"16-byte buffer, one byte at a time", newReaderSize(iotest.OneByteReader(bytes.NewReader(in)), tc.max, 16)},
			}
			for _, rd := range readers {
				checkRead(t, rd.how, rd.r, tc.in, tc.want, tc.wantErr, tc.wantDiscarded)
			}
			if len(in) > 1000 {
				return // splitting every offset of the large cases adds nothing
			}
			for n := 0; n <= len(in); n++ {
				checkRead(t, fmt.Sprintf("split at %d", n), NewReader(splitReader(in, n), tc.max),
					tc.in, tc.want, tc.wantErr, tc.wantDiscarded)
				checkRead(t, fmt.Sprintf("split at %d, 16-byte buffer", n), newReaderSize(splitReader(in, n), tc.max, 16),
					tc.in, tc.want, tc.wantErr, tc.wantDiscarded)
			}
		})
	}
}

func TestReaderErrorsAreSticky(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{name: "EOF", in: "", wantErr: io.EOF},
		{name: "unexpected EOF", in: "\x0bab", wantErr: io.ErrUnexpectedEOF},
		{name: "too large", in: frame("0123456789a") + frame("b"), wantErr: ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), 10)
			_, first := r.ReadFrame()
			if errClass(first) != errClass(tc.wantErr) {
				t.Fatalf("first ReadFrame error = %v, want %v", first, tc.wantErr)
			}
			for i := range 3 {
				p, err := r.ReadFrame()
				if p != nil || err != first {
					t.Errorf("ReadFrame #%d after error = %q, %v; want nil, %v", i+2, p, err, first)
				}
			}
		})
	}
}

func TestReaderErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "unexpected EOF", in: "\x0babc", want: "mllp: reading frame, 3 bytes into the payload: unexpected EOF"},
		{name: "too large", in: frame("0123456789a"), want: "mllp: frame too large: payload longer than 10 bytes"},
		{name: "read error", in: "\x0bab", want: "mllp: reading frame, 2 bytes into the payload: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var src io.Reader = strings.NewReader(tc.in)
			if tc.name == "read error" {
				src = io.MultiReader(src, iotest.ErrReader(errors.New("boom")))
			}
			_, err := NewReader(src, 10).ReadFrame()
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReaderFramesAreFresh checks that a returned payload is not
// overwritten by later reads.
func TestReaderFramesAreFresh(t *testing.T) {
	r := NewReader(strings.NewReader(frame("first")+frame("second")+frame("3")), 0)
	a, _ := r.ReadFrame()
	b, _ := r.ReadFrame()
	c, _ := r.ReadFrame()
	if string(a) != "first" || string(b) != "second" || string(c) != "3" {
		t.Errorf("frames = %q %q %q, want first second 3", a, b, c)
	}
	// Appending to a payload must not write into the next one.
	a = append(a, "XXXXXXXX"...)
	if string(b) != "second" {
		t.Errorf("after append to the first payload, second = %q", b)
	}
	_ = a
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// endless yields the same byte forever.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// TestReaderStopsAtLimit checks that an endless frame is rejected after
// reading no more than the limit plus one buffer.
func TestReaderStopsAtLimit(t *testing.T) {
	const max = 1 << 20
	src := &countingReader{r: io.MultiReader(strings.NewReader("\x0b"), endless('a'))}
	_, err := NewReader(src, max).ReadFrame()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("error = %v, want ErrFrameTooLarge", err)
	}
	if limit := 1 + max + readBufferSize; src.n > limit {
		t.Errorf("read %d bytes, want at most %d", src.n, limit)
	}
}

// TestReaderStopsGarbageAtLimit checks the same for bytes outside frames.
func TestReaderStopsGarbageAtLimit(t *testing.T) {
	const limit = 100 << 10
	src := &countingReader{r: endless('g')}
	r := NewReader(src, 0)
	err := r.skipToStart(limit)
	if !errors.Is(err, errTooMuchGarbage) {
		t.Fatalf("error = %v, want errTooMuchGarbage", err)
	}
	if max := limit + readBufferSize; src.n > max {
		t.Errorf("read %d bytes, want at most %d", src.n, max)
	}
	if r.Discarded() <= limit {
		t.Errorf("Discarded() = %d, want more than %d", r.Discarded(), limit)
	}
}

func TestSkipToStartLimit(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		limit   int64
		wantErr error
	}{
		{name: "no garbage, zero limit", in: frame("a"), limit: 0},
		{name: "garbage at the limit", in: "12345" + frame("a"), limit: 5},
		{name: "garbage over the limit", in: "123456" + frame("a"), limit: 5, wantErr: errTooMuchGarbage},
		{name: "garbage over the limit then EOF", in: "123456", limit: 5, wantErr: errTooMuchGarbage},
		{name: "garbage at the limit then EOF", in: "12345", limit: 5, wantErr: io.EOF},
		{name: "no limit", in: strings.Repeat("x", 100) + frame("a"), limit: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, bufSize := range []int{16, readBufferSize} {
				r := newReaderSize(iotest.HalfReader(strings.NewReader(tc.in)), 0, bufSize)
				err := r.skipToStart(tc.limit)
				if !errors.Is(err, tc.wantErr) && err != tc.wantErr {
					t.Errorf("buffer %d: skipToStart error = %v, want %v", bufSize, err, tc.wantErr)
				}
			}
		})
	}
}

// TestReaderGrowsIncrementally checks that a large maximum frame size is
// not allocated up front.
func TestReaderGrowsIncrementally(t *testing.T) {
	in := []byte(frame(strings.Repeat("x", 1000)))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewReader(bytes.NewReader(in), DefaultMaxFrameSize)
	p, err := r.ReadFrame()
	runtime.ReadMemStats(&after)
	if err != nil || len(p) != 1000 {
		t.Fatalf("ReadFrame = %d bytes, %v; want 1000 bytes", len(p), err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("reading a 1000-byte frame allocated %d bytes, want under 1 MiB", got)
	}
}

// writeCounter records each Write call.
type writeCounter struct {
	calls [][]byte
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.calls = append(w.calls, bytes.Clone(p))
	return len(p), nil
}

func TestWriteFrame(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
		wantErr error
	}{
		{name: "message", payload: "MSH|^~\\&|A\rPID|1\r", want: "\x0bMSH|^~\\&|A\rPID|1\r\x1c\x0d"},
		{name: "empty", payload: "", want: "\x0b\x1c\x0d"},
		{name: "FS without CR", payload: "a\x1cb", want: "\x0ba\x1cb\x1c\x0d"},
		{name: "trailing FS", payload: "a\x1c", want: "\x0ba\x1c\x1c\x0d"},
		{name: "VT", payload: "\x0b", want: "\x0b\x0b\x1c\x0d"},
		{name: "end sequence inside", payload: "a\x1c\x0db", wantErr: ErrInvalidPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w writeCounter
			err := WriteFrame(&w, []byte(tc.payload))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WriteFrame error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if len(w.calls) != 0 {
					t.Errorf("WriteFrame made %d Write calls after an error, want 0", len(w.calls))
				}
				return
			}
			if len(w.calls) != 1 {
				t.Fatalf("WriteFrame made %d Write calls, want 1", len(w.calls))
			}
			if got := string(w.calls[0]); got != tc.want {
				t.Errorf("WriteFrame wrote %q, want %q", got, tc.want)
			}
			back, err := NewReader(bytes.NewReader(w.calls[0]), 0).ReadFrame()
			if err != nil || string(back) != tc.payload {
				t.Errorf("reading it back = %q, %v; want %q", back, err, tc.payload)
			}
		})
	}
}

func TestWriteFrameError(t *testing.T) {
	boom := errors.New("boom")
	err := WriteFrame(errWriter{boom}, []byte("x"))
	if !errors.Is(err, boom) {
		t.Errorf("WriteFrame error = %v, want it to wrap %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
