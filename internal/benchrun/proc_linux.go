package benchrun

import "syscall"

// procAttr makes the kernel stop the engine's processes (SIGTERM, so
// gracefully) if the bench dies without stopping them.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
