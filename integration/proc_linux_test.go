package integration

import "syscall"

// childProcAttr makes the kernel kill a listener when the test process
// dies (a test binary killed by its -timeout, for example), so that no
// listener outlives its test.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
