//go:build !linux

package l7

import "net"

// rawIO reads and writes through the net.Conn itself: the raw system
// calls of the Linux version (see rawio_linux.go) are an optimisation for
// Linux's scheduler costs only.
type rawIO struct {
	conn net.Conn
}

// init sets r up for c.
func (r *rawIO) init(c net.Conn) { r.conn = c }

// Read implements io.Reader.
func (r *rawIO) Read(p []byte) (int, error) { return r.conn.Read(p) }

// Write implements io.Writer.
func (r *rawIO) Write(p []byte) (int, error) { return r.conn.Write(p) }

// lastWrite runs flush: coalescing the last bytes with the FIN is
// Linux-only (see rawio_linux.go).
func (r *rawIO) lastWrite(flush func() error) error { return flush() }
