package main

import "syscall"

// childProcAttr makes the kernel stop devrun's processes (SIGTERM, so
// gracefully) if devrun itself dies without stopping them (killed with
// SIGKILL, say): a listener or router left running would hold the ports
// and make the next make run fail, and a simulated feed would send its
// fictional patients to whatever listens on 127.0.0.1:2575 next, a make
// run's development database included.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
