//go:build !linux

package main

import "syscall"

// demoProcAttr: only Linux can stop children when their parent dies.
func demoProcAttr() *syscall.SysProcAttr { return nil }
