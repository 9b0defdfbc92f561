package mllp

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// payloadOf returns an HL7-like payload of n bytes.
func payloadOf(n int) []byte {
	seg := []byte("OBX|1|ED|PDF^Report||JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K|\r")
	return bytes.Repeat(seg, n/len(seg)+1)[:n]
}

func BenchmarkReader(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			// Enough frames per stream that setup is amortised.
			frames := max(1, (4<<20)/size)
			var stream bytes.Buffer
			for range frames {
				if err := WriteFrame(&stream, payloadOf(size)); err != nil {
					b.Fatal(err)
				}
			}
			src := bytes.NewReader(stream.Bytes())
			r := NewReader(src, DefaultMaxFrameSize)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n == frames {
					src.Reset(stream.Bytes())
					r = NewReader(src, DefaultMaxFrameSize)
					n = 0
				}
				p, err := r.ReadFrame()
				if err != nil || len(p) != size {
					b.Fatalf("ReadFrame = %d bytes, %v", len(p), err)
				}
				n++
			}
		})
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s := &Server{Handler: HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) {
				return []byte("MSH|^~\\&|AORTA\rMSA|AA|1\r"), nil
			})}
			c := dialClient(b, startServer(b, s))
			payload := payloadOf(size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Send(ctx, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteFrame frames an ACK-sized and a message-sized payload, as
// the listener and a sender do for every exchange.
func BenchmarkWriteFrame(b *testing.B) {
	for _, size := range []int{256, 2 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := payloadOf(size)
			var buf bytes.Buffer
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := WriteFrame(&buf, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
