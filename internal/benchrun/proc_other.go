//go:build !linux

package benchrun

import "syscall"

// procAttr: elsewhere a bench that dies leaves its processes to the user.
func procAttr() *syscall.SysProcAttr { return nil }
