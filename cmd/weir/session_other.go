//go:build !linux

package main

import "os/exec"

// ownSession leaves cmd as it is: upgrades and reloads need Linux.
func ownSession(cmd *exec.Cmd) {}
