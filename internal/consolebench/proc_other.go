//go:build !linux

package consolebench

import "syscall"

// procAttr: only Linux can tie the router's life to the bench's.
func procAttr() *syscall.SysProcAttr { return nil }
