package testenv

import (
	"net"
	"sync"
	"testing"
)

// AcceptEach serves every connection ln accepts with serve, on a
// goroutine of its own, and closes it when serve returns, until t ends;
// then it closes ln and waits for them, so serve must return by itself
// (a deadline on the connection, say). The accept loop is itself counted
// in the wait group, so the count never drops to zero (letting Wait
// return) while the loop may still add a connection to it.
func AcceptEach(t testing.TB, ln net.Listener, serve func(net.Conn)) {
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
}
