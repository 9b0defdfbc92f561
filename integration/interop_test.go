package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/internal/pgtest"
)

// TestMLLPSendInterop sends a file with Debian's mllp_send (python-hl7),
// the client the README tells people to try, and checks its ACKs and the
// stored rows. A missing mllp_send fails the test: CI installs it.
func TestMLLPSendInterop(t *testing.T) {
	t.Parallel()
	tool, err := exec.LookPath("mllp_send")
	if err != nil {
		t.Fatalf("mllp_send is not on PATH (%v): apt-get install python3-hl7 (scripts/deps --test, run by make test and .ci/run, installs it)", err)
	}
	dbURL := pgtest.NewDatabase(t)
	db := openDB(t, dbURL)
	l := startListener(t, dbURL)
	_, port, err := net.SplitHostPort(l.MLLPAddr)
	if err != nil {
		t.Fatal(err)
	}

	// A file as a person writes it: one segment per line, LF line ends,
	// two messages. --loose turns line ends into CR and strips the
	// trailing one, so what arrives is each message with CR terminators.
	msgs := [][]byte{testMessageWithID("INTEROP-1", 3, 0), testMessageWithID("INTEROP-2", 3, 1)}
	var file bytes.Buffer
	for _, m := range msgs {
		file.Write(bytes.ReplaceAll(m, []byte("\r"), []byte("\n")))
	}
	path := filepath.Join(t.TempDir(), "messages.hl7")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*ioTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, "--loose", "--file", path, "--port", port, "127.0.0.1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %q\nstderr: %s", cmd, err, stdout.Bytes(), stderr.Bytes())
	}
	// stdout holds each ACK as received, framing bytes included.
	out := strings.NewReplacer("\x0b", "", "\x1c", "", "\n", "").Replace(stdout.String())
	for _, cid := range []string{"INTEROP-1", "INTEROP-2"} {
		if !strings.Contains(out, "\rMSA|AA|"+cid+"\r") && !strings.HasSuffix(out, "\rMSA|AA|"+cid) {
			t.Errorf("mllp_send output has no MSA|AA|%s:\n%q", cid, stdout.Bytes())
		}
	}
	for _, m := range msgs {
		want := bytes.TrimRight(m, "\r")
		row := waitForRaw(t, db, want)
		if row.Status != "accepted" || row.Outbox != 1 {
			t.Errorf("%s: status %q with %d outbox rows, want accepted with 1", row.ControlID, row.Status, row.Outbox)
		}
	}
}
