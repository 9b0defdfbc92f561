package consolebench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/logline"
)

// readyTimeout bounds the router's start-up (it waits for the database
// and applies migrations first); stopTimeout its graceful stop.
const (
	readyTimeout = 2 * time.Minute
	stopTimeout  = 30 * time.Second
)

// process is the router, started by the bench.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startRouter starts bin/router serving the API on a free loopback port,
// its output going to log, and returns once it logged "router ready",
// with the API's address.
func startRouter(ctx context.Context, bin, routes string, env []string, log io.Writer) (*process, string, error) {
	cmd := exec.Command(filepath.Join(bin, "router"), "--routes", routes, "--http-addr", "", "--api-addr", "127.0.0.1:0")
	cmd.Env = env
	cmd.SysProcAttr = procAttr() // on Linux, never outlive the bench
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start router: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	ready := make(chan string, 1)
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		addr, sent := "", false
		for sc.Scan() {
			line := sc.Bytes()
			logMu.Lock()
			fmt.Fprintf(log, "router: %s\n", line)
			logMu.Unlock()
			msg := logline.FirstString(line, "msg")
			if msg == "API listening" {
				addr = logline.FirstString(line, "addr")
			}
			if !sent && strings.HasPrefix(msg, "router ready") {
				ready <- addr
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case addr := <-ready:
		if addr == "" {
			p.stop()
			return nil, "", fmt.Errorf("router ready without an API address; see the bench log")
		}
		return p, addr, nil
	case <-p.done:
		return nil, "", fmt.Errorf("router exited during start-up (%v); see the bench log", p.err)
	case <-ctx.Done():
		p.stop()
		return nil, "", ctx.Err()
	case <-time.After(readyTimeout):
		p.stop()
		return nil, "", fmt.Errorf("router not ready after %v; see the bench log", readyTimeout)
	}
}

// stop sends SIGTERM, waits, then kills. It may be called more than once.
func (p *process) stop() {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM) // an error only means it has exited
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// routerCommand runs bin/router with args and returns its standard
// output (a token, for "token create").
func routerCommand(ctx context.Context, bin string, env []string, log io.Writer, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "router"), args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("router %s: %w; see the bench log", strings.Join(args[:min(2, len(args))], " "), err)
	}
	return strings.TrimSpace(out.String()), nil
}
