//go:build !linux

package main

import "syscall"

// childProcAttr: only Linux can stop children when their parent dies.
func childProcAttr() *syscall.SysProcAttr { return nil }
