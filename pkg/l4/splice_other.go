//go:build !linux

package l4

import "net"

// pipePool has nothing to pool where splice(2) does not exist.
type pipePool struct{}

func (*pipePool) close() {}

// spliceTCP never handles a copy where splice(2) does not exist: the
// caller copies through a buffer.
func spliceTCP(*pipePool, *bufferPool, net.Conn, net.Conn, func(int)) (handled bool, err error) {
	return false, nil
}

// shutdownWrite leaves half-closing to the connection's CloseWrite.
func shutdownWrite(net.Conn) (handled bool, err error) { return false, nil }
