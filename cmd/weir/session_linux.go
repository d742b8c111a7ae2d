package main

import (
	"os/exec"
	"syscall"
)

// ownSession makes cmd start in a session of its own, so that it outlives
// this process's session (a reload's successor outlives its parent).
func ownSession(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
