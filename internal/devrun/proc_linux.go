package main

import "syscall"

// demoProcAttr makes the kernel stop the demo's processes (SIGTERM, so
// gracefully) if devrun itself dies without stopping them: a simulated
// feed left running would otherwise send its fictional patients to
// whatever listens on 127.0.0.1:2575 next, a make run's development
// database included.
func demoProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
