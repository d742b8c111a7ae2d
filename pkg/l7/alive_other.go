//go:build !linux

package l7

import "net"

// alive trusts idle connections where no non-blocking peek is available;
// a stale one is caught on use and the request retried when safe.
func alive(net.Conn) bool { return true }

// canWaitReadable reports false: without a non-blocking peek an idle
// connection keeps its read buffer while it waits.
func canWaitReadable(net.Conn) bool { return false }

// waitReadable is never called where canWaitReadable is false.
func waitReadable(net.Conn) error { return nil }
