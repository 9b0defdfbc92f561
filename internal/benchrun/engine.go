package benchrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aortahealth/aorta/internal/logline"
)

// readyTimeout bounds a process's start-up: the listener waits up to a
// minute for the database by itself (--db-wait).
const readyTimeout = 90 * time.Second

// stopTimeout bounds a graceful stop before the process is killed.
const stopTimeout = 30 * time.Second

// process is the listener or the router, started by the bench.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

// startProcess starts path with args and env, writes its output to log
// line by line, prefixed with name, and waits until a line's msg begins
// with readyMsg; it returns the line's value of key (an address). The
// process is killed if the bench dies (Pdeathsig on Linux).
func startProcess(ctx context.Context, name, path string, args, env []string, log io.Writer, logMu *sync.Mutex, readyMsg, key string) (*process, string, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.SysProcAttr = procAttr()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			logMu.Lock()
			fmt.Fprintf(log, "%s: %s\n", name, line)
			logMu.Unlock()
			if !sent && strings.HasPrefix(logline.FirstString(line, "msg"), readyMsg) {
				ready <- logline.FirstString(line, key)
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case addr := <-ready:
		return p, addr, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited during start-up (%v); see the bench log", name, p.err)
	case <-ctx.Done():
		p.stop()
		return nil, "", ctx.Err()
	case <-time.After(readyTimeout):
		p.stop()
		return nil, "", fmt.Errorf("%s not ready after %v; see the bench log", name, readyTimeout)
	}
}

// pid is the process's ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits for a graceful exit, then kills. It may be
// called more than once.
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

// exited reports whether the process has stopped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// execIn is a command for a binary of dir.
func execIn(dir, name string, args ...string) *exec.Cmd {
	return exec.Command(dir+"/"+name, args...)
}
