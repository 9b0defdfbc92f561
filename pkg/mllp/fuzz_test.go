package mllp

import (
	"bytes"
	"testing"
	"testing/iotest"
)

// FuzzReader checks that the Reader never panics, that its output does not
// depend on how the input is split into reads or on its buffer size, that
// no frame exceeds the maximum, and that every frame survives WriteFrame
// and a second read unchanged.
func FuzzReader(f *testing.F) {
	for _, tc := range readerCases {
		if len(tc.in) <= 1000 {
			f.Add([]byte(tc.in), uint16(tc.max), uint16(len(tc.in)/2))
		}
	}
	f.Add([]byte("\x0b\x0b\x1c\x1c\x0d\x0d\x1c\x0b\x1c"), uint16(3), uint16(4))
	f.Add([]byte("junk\x0bMSH|^~\\&\rPID|||\xc3\xa9\x1c\x0d\n\x0b\x1c\x0d"), uint16(0), uint16(9))

	f.Fuzz(func(t *testing.T, in []byte, maxSize, split uint16) {
		max := int(maxSize)%300 + 1 // small, so that the size limit is often hit
		n := int(split) % (len(in) + 1)

		// Whole: one read, the default buffer.
		whole := NewReader(bytes.NewReader(in), max)
		want, wantErr := readAll(whole, len(in))

		// Split: two reads, then one byte at a time, through a tiny buffer.
		src := splitReader(in, n)
		if split%2 == 1 {
			src = iotest.OneByteReader(src)
		}
		parts := newReaderSize(src, max, 16)
		got, gotErr := readAll(parts, len(in))

		if !equalFrames(got, want) {
			t.Fatalf("split at %d: frames = %s, whole input gives %s", n, showFrames(got), showFrames(want))
		}
		if errClass(gotErr) != errClass(wantErr) {
			t.Fatalf("split at %d: error = %v, whole input gives %v", n, gotErr, wantErr)
		}
		if c := errClass(wantErr); c != "EOF" && c != "ErrUnexpectedEOF" && c != "ErrFrameTooLarge" {
			t.Fatalf("unexpected error from reading a byte slice: %v", wantErr)
		}
		if errClass(wantErr) != "ErrFrameTooLarge" && parts.Discarded() != whole.Discarded() {
			t.Fatalf("split at %d: Discarded() = %d, whole input gives %d", n, parts.Discarded(), whole.Discarded())
		}

		var total int64
		for i, p := range want {
			total += int64(len(p)) + frameOverhead
			if len(p) > max {
				t.Fatalf("frame %d is %d bytes, over the maximum %d", i, len(p), max)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, []byte(p)); err != nil {
				t.Fatalf("WriteFrame(frame %d): %v", i, err)
			}
			back, err := newReaderSize(&buf, max, 16).ReadFrame()
			if err != nil || string(back) != p {
				t.Fatalf("frame %d re-read = %q, %v; want %q", i, back, err, p)
			}
		}
		if total+whole.Discarded() > int64(len(in)) {
			t.Fatalf("frames and discarded bytes add up to %d, more than the %d bytes of input", total+whole.Discarded(), len(in))
		}
	})
}
