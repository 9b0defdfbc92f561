package consolebench

import "syscall"

// procAttr kills the router if the bench dies first.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
