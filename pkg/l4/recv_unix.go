//go:build unix

package l4

import (
	"errors"
	"syscall"
)

// errNoRawConn is returned by receive for a socket without a raw
// connection, which a *net.UDPConn from Dial always has.
var errNoRawConn = errors.New("flow socket has no raw connection")

// initReceive prepares receive: the raw socket, and the read callback
// made once so that waiting for a datagram allocates nothing.
func (f *flow) initReceive() {
	if raw, err := f.conn.SyscallConn(); err == nil {
		f.raw = raw
	}
	f.readReady = f.tryRead
}

// receive waits for the next datagram from the backend and returns it in
// a pooled buffer, which the caller puts back. It takes the buffer only
// once a datagram is there to read, so a waiting flow holds none: 65,536
// idle flows would otherwise pin 4 GiB of buffers.
func (f *flow) receive() (*[]byte, int, error) {
	if f.raw == nil {
		return nil, 0, errNoRawConn
	}
	f.rbuf, f.rn, f.rerr = nil, 0, nil
	if err := f.raw.Read(f.readReady); err != nil {
		return nil, 0, err
	}
	return f.rbuf, f.rn, f.rerr
}

// tryRead reads one datagram without blocking. It returns false when none
// is waiting, so that the runtime parks the goroutine until the socket is
// readable and calls it again.
func (f *flow) tryRead(fd uintptr) bool {
	buf := f.bufs.get()
	n, err := readRetryingEINTR(int(fd), *buf)
	if err == syscall.EAGAIN {
		f.bufs.put(buf)
		return false
	}
	if err != nil {
		f.bufs.put(buf)
		f.rerr = err
		return true
	}
	f.rbuf, f.rn = buf, n
	return true
}

func readRetryingEINTR(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
