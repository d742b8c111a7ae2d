package admin

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred names the process at the other end of a Unix socket by its
// uid and pid (SO_PEERCRED), or returns "" when the kernel will not say.
func peerCred(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return ""
	}
	return fmt.Sprintf("uid=%d pid=%d", cred.Uid, cred.Pid)
}
