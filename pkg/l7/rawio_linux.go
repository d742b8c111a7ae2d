package l7

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIO reads and writes a plain TCP connection with raw system calls
// through its syscall.RawConn, falling back to the net.Conn for anything
// else (TLS, pipes in tests).
//
// Why: a read or write through net.Conn tells the Go scheduler it enters
// a system call that may block. The socket is non-blocking, so it never
// does, but on a virtual machine a loopback write (which delivers the data
// to the receiver inline) easily lasts longer than the scheduler monitor's
// 20 µs tick. The monitor then hands the processor to another thread,
// waking it, and keeps polling every 20 µs; with GOMAXPROCS=1 that
// hand-off is pure overhead, about a sixth of the proxy's CPU time in
// scripts/bench. Raw calls leave the scheduler out: RawConn still waits in
// the poller (honouring deadlines) when the socket is not ready.
//
// The calls are recvfrom(2) and sendto(2), not read(2) and write(2):
// those go through the VFS layer first (file position lock, access checks,
// fsnotify), which a socket never needs; in a c32 profile that layer was
// about 3 % of weir's samples, and recvfrom/sendto (which HAProxy uses)
// 7 % less CPU per request in an A/B run. MSG_NOSIGNAL spares the process
// a SIGPIPE for every write to a client that has gone.
type rawIO struct {
	conn net.Conn
	rc   syscall.RawConn // nil: use conn

	// State of the read and of the write in progress (a tunnel reads and
	// writes at once), used by the callbacks below, which are bound once
	// so that a call allocates nothing.
	rbuf, wbuf []byte
	rn, wn     int
	rerr, werr error
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
	// more makes writes pass MSG_MORE, so the kernel holds back their
	// last partial segment; closeWrite then sends it with the FIN.
	more bool
}

// init sets r up for c.
func (r *rawIO) init(c net.Conn) {
	*r = rawIO{conn: c}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			r.rc = rc
			r.readFn = r.readOnce
			r.writeFn = r.writeAll
		}
	}
}

// Read implements io.Reader.
func (r *rawIO) Read(p []byte) (int, error) {
	if r.rc == nil {
		return r.conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.rbuf, r.rn, r.rerr = p, 0, nil
	if err := r.rc.Read(r.readFn); err != nil {
		r.rbuf = nil
		return 0, err
	}
	n, err := r.rn, r.rerr
	r.rbuf, r.rerr = nil, nil
	return n, err
}

// readOnce is the RawConn callback of Read: it reports false (wait for
// input) only when the socket has none.
func (r *rawIO) readOnce(fd uintptr) bool {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return false
		case errno != 0:
			r.rerr = r.opError("read", errno)
		case n == 0:
			r.rerr = io.EOF
		default:
			r.rn = int(n)
		}
		return true
	}
}

// Write implements io.Writer: it writes all of p or fails.
func (r *rawIO) Write(p []byte) (int, error) {
	if r.rc == nil {
		return r.conn.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.wbuf, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	n := r.wn
	if err == nil {
		err = r.werr
	}
	r.wbuf, r.werr = nil, nil
	return n, err
}

// writeAll is the RawConn callback of Write: it writes until all is out,
// reporting false (wait until writable) when the socket buffer is full.
func (r *rawIO) writeAll(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		rest := r.wbuf[r.wn:]
		flags := uintptr(unix.MSG_NOSIGNAL)
		if r.more {
			flags |= unix.MSG_MORE
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)), flags, 0, 0)
		switch errno {
		case 0:
			r.wn += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			r.werr = r.opError("write", errno)
			return true
		}
	}
	return true
}

// lastWrite runs flush, which writes the last bytes the connection will
// send, so that they leave with the FIN in one segment: written with
// MSG_MORE, they wait in the socket until the shutdown(SHUT_WR) that
// follows at once. A connection closed after its response otherwise sends
// the FIN in a segment of its own (one of the 11 of a one-request
// connection) and wakes its client twice. Where there is no raw socket
// (TLS), flush runs alone.
func (r *rawIO) lastWrite(flush func() error) error {
	if r.rc == nil {
		return flush()
	}
	r.more = true
	err := flush()
	r.more = false
	// Even when flush failed: what it left in the socket must not wait.
	// A failed shutdown is not the response's failure: it only finds the
	// client gone, which closing the socket deals with.
	r.closeWrite()
	return err
}

// closeWrite shuts the connection down for writing, sending the FIN.
func (r *rawIO) closeWrite() {
	r.rc.Control(func(fd uintptr) {
		unix.RawSyscall(unix.SYS_SHUTDOWN, fd, unix.SHUT_WR, 0)
	})
}

// opError wraps a failed system call the way net.Conn reports it.
func (r *rawIO) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
