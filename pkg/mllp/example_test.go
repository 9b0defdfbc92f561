package mllp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/aortahealth/aorta/pkg/mllp"
)

func ExampleReader() {
	// A stream with a stray line feed before the first frame.
	stream := strings.NewReader("\n\x0bMSH|^~\\&|LAB\rPID|1\r\x1c\x0d\x0bMSH|^~\\&|ADT\r\x1c\x0d")
	r := mllp.NewReader(stream, mllp.DefaultMaxFrameSize)
	for {
		payload, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("%q\n", payload)
	}
	fmt.Println("discarded:", r.Discarded())
	// Output:
	// "MSH|^~\\&|LAB\rPID|1\r"
	// "MSH|^~\\&|ADT\r"
	// discarded: 1
}

func ExampleWriteFrame() {
	var buf bytes.Buffer
	if err := mllp.WriteFrame(&buf, []byte("MSH|^~\\&|LAB\r")); err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("% x\n", buf.Bytes()[:4])
	fmt.Printf("%q\n", buf.String())
	// Output:
	// 0b 4d 53 48
	// "\vMSH|^~\\&|LAB\r\x1c\r"
}

func ExampleServer() {
	srv := &mllp.Server{
		// A real handler parses the message, stores it, and returns an
		// HL7 ACK; returning an error instead makes the sender resend.
		Handler: mllp.HandlerFunc(func(ctx context.Context, c mllp.ConnInfo, frame []byte) ([]byte, error) {
			if !bytes.HasPrefix(frame, []byte("MSH|")) {
				return nil, errors.New("not an HL7 message")
			}
			return []byte("MSH|^~\\&|AORTA\rMSA|AA|1\r"), nil
		}),
		IdleTimeout: time.Minute,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mllp.Dial(ctx, ln.Addr().String())
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer client.Close()
	ack, err := client.Send(ctx, []byte("MSH|^~\\&|LAB|HOSP|AORTA|HOSP|20240101120000||ORU^R01|1|P|2.5\r"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("%q\n", ack)

	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
	}
	fmt.Println(<-served)
	fmt.Println("frames read:", srv.Stats().FramesRead)
	// Output:
	// "MSH|^~\\&|AORTA\rMSA|AA|1\r"
	// mllp: server closed
	// frames read: 1
}

func ExampleTLSReloader() {
	// MLLP over TLS, with client certificates required, for senders on
	// one network only, each limited to 8 connections and 200 messages a
	// second. The files are re-read when they change: a renewed
	// certificate needs no restart.
	certs, err := mllp.NewTLSReloader(mllp.TLSFiles{
		CertFile:     "/etc/aorta/tls/listener.pem",
		KeyFile:      "/etc/aorta/tls/listener.key",
		ClientCAFile: "/etc/aorta/tls/senders-ca.pem",
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	srv := &mllp.Server{
		Handler: mllp.HandlerFunc(func(ctx context.Context, c mllp.ConnInfo, frame []byte) ([]byte, error) {
			// c.TLS.PeerCertificates[0] is the sender's verified certificate.
			return []byte("MSH|^~\\&|AORTA\rMSA|AA|1\r"), nil
		}),
		TLSConfig:     certs.Config(),
		AllowedNets:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		MaxConnsPerIP: 8,
		RateLimit:     200,
	}
	if err := srv.ListenAndServe(":2575"); err != nil {
		fmt.Println("error:", err)
	}
}
