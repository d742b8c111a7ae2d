//go:build !linux

package admin

import "net"

// peerCred returns "": only Linux names a Unix socket's peer here.
func peerCred(*net.UnixConn) string { return "" }
