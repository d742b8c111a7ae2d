package l4

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity the proxy asks for its splice pipes. A pipe
// holds one socket buffer's fragments per slot, and Linux's default 16
// slots fill with a fraction of what a fast TCP receive queue holds, so
// the default would take several splice(2) pairs for what one pair moves
// through this size. The kernel may refuse it (an unprivileged user over
// fs/pipe-user-pages-soft); the pipe then keeps its default size.
const pipeSize = 256 << 10

// maxFreePipes bounds the pipes kept for reuse. Only transfers in progress
// hold a pipe (see spliceCopy), so this covers a busy proxy's concurrent
// transfers; more are closed when they come back.
const maxFreePipes = 64

// pipe is a kernel pipe that splice(2) moves bytes through, with the count
// of bytes it holds.
type pipe struct {
	r, w     int
	buffered int
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create splice pipe: %w", err)
	}
	// Best effort: a pipe of the default size works, a little slower.
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// pipePool keeps empty pipes for reuse, so that a transfer costs no
// pipe2(2) and close(2) calls.
type pipePool struct {
	mu     sync.Mutex
	free   []*pipe
	closed bool
}

func (pp *pipePool) get() (*pipe, error) {
	pp.mu.Lock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free = pp.free[:n-1]
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	return newPipe()
}

// put returns p for reuse; a pipe still holding bytes (its transfer
// failed) or one over the bound is closed instead.
func (pp *pipePool) put(p *pipe) {
	if p.buffered == 0 {
		pp.mu.Lock()
		if !pp.closed && len(pp.free) < maxFreePipes {
			pp.free = append(pp.free, p)
			pp.mu.Unlock()
			return
		}
		pp.mu.Unlock()
	}
	p.close()
}

// close closes the free pipes, and those put back after.
func (pp *pipePool) close() {
	pp.mu.Lock()
	free := pp.free
	pp.free, pp.closed = nil, true
	pp.mu.Unlock()
	for _, p := range free {
		p.close()
	}
}

// spliceFlags: the pipe end never blocks, and pages move rather than copy
// where the kernel can. Never SPLICE_F_MORE: bytes leave as they arrive.
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// splice moves up to n bytes from in to out. It is a raw system call:
// both ends are non-blocking (sockets from the runtime, the pipe opened
// O_NONBLOCK and SPLICE_F_NONBLOCK), so it never waits, and telling the
// runtime of a system call that cannot block would only let its monitor
// thread hand the processor to another thread in the middle of one,
// which a bulk transfer paid for in context switches (7–11 % of the
// proxy's CPU time in the lab's iperf3 profile).
func splice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// spliceCopy is one direction's copy between two TCP sockets. It starts
// by reading into a pooled buffer and writing from it, which for the few
// hundred bytes of a request or reply costs the kernel less than moving
// them through a pipe; once a read fills the buffer (a bulk transfer) it
// switches for good to splice(2), src into a pipe and the pipe into dst,
// in the kernel. It takes a buffer or pipe from its pool only once src has
// bytes, and gives it back whenever src has none for now, so an idle
// connection holds neither.
type spliceCopy struct {
	pipes    *pipePool
	bufs     *bufferPool
	src, dst syscall.RawConn
	count    func(n int) // called with the bytes of every write or splice into dst
	spliced  bool        // a read filled the buffer: splice from now on
	buf      *[]byte     // the copy mode's buffer, holding buf[off:end]
	off, end int
	p        *pipe // the splice mode's pipe
	err      error // the last system call's error
	eof      bool
	// fill and drain are the callbacks of src.Read and dst.Write, made
	// once per copy so that waiting allocates nothing.
	fill, drain func(fd uintptr) bool
}

// spliceTCP copies src to dst until src ends, in the kernel, when both
// are TCP sockets; handled is false, and nothing was read, otherwise.
// count is called with the bytes of every write into dst.
func spliceTCP(pipes *pipePool, bufs *bufferPool, dst, src net.Conn, count func(int)) (handled bool, err error) {
	dt, ok1 := tcpSocket(dst)
	st, ok2 := tcpSocket(src)
	if !ok1 || !ok2 {
		return false, nil
	}
	d, err1 := dt.SyscallConn()
	s, err2 := st.SyscallConn()
	if err1 != nil || err2 != nil {
		return false, nil
	}
	sc := &spliceCopy{pipes: pipes, bufs: bufs, src: s, dst: d, count: count}
	sc.fill = sc.tryFill
	sc.drain = sc.tryDrain
	return true, sc.run()
}

// tryFill moves what src has into the (empty) buffer or pipe; false means
// src has nothing now and the caller, src.Read, waits for it. The buffer
// or pipe goes back to its pool for the wait.
func (sc *spliceCopy) tryFill(fd uintptr) bool {
	if sc.spliced {
		return sc.fillPipe(fd)
	}
	if sc.buf == nil {
		sc.buf = sc.bufs.get()
	}
	for {
		b := *sc.buf
		r, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			sc.bufs.put(sc.buf)
			sc.buf = nil
			return false
		case 0:
			sc.off, sc.end = 0, int(r)
			sc.eof = r == 0
			sc.spliced = int(r) == len(b)
		default:
			sc.err = os.NewSyscallError("read", errno)
		}
		return true
	}
}

func (sc *spliceCopy) fillPipe(fd uintptr) bool {
	if sc.p == nil {
		if sc.p, sc.err = sc.pipes.get(); sc.err != nil {
			return true
		}
	}
	for {
		n, err := splice(int(fd), sc.p.w, pipeSize)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			sc.pipes.put(sc.p)
			sc.p = nil
			return false
		case nil:
			sc.p.buffered += n
			sc.eof = n == 0
		default:
			sc.err = os.NewSyscallError("splice", err)
		}
		return true
	}
}

// tryDrain moves the buffer's, then the pipe's, bytes into dst; false
// means dst's send buffer is full and the caller, dst.Write, waits for
// room.
func (sc *spliceCopy) tryDrain(fd uintptr) bool {
	for sc.off < sc.end {
		b := (*sc.buf)[sc.off:sc.end]
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			sc.off += int(r)
			sc.count(int(r))
			continue
		}
		sc.err = os.NewSyscallError("write", errno)
		return true
	}
	if sc.spliced && sc.buf != nil { // the last buffered bytes are out
		sc.bufs.put(sc.buf)
		sc.buf = nil
	}
	for sc.p != nil && sc.p.buffered > 0 {
		n, err := splice(sc.p.r, int(fd), sc.p.buffered)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			sc.err = os.NewSyscallError("splice", err)
			return true
		case n == 0:
			sc.err = errors.New("splice moved no bytes out of a pipe that holds some")
			return true
		}
		sc.p.buffered -= n
		sc.count(n)
	}
	return true
}

// run copies until src reaches its end (nil) or a system call fails.
func (sc *spliceCopy) run() error {
	defer func() {
		if sc.p != nil {
			sc.pipes.put(sc.p) // closed if the failure left bytes in it
			sc.p = nil
		}
		if sc.buf != nil {
			sc.bufs.put(sc.buf)
			sc.buf = nil
		}
	}()
	for {
		if err := sc.src.Read(sc.fill); err != nil {
			return err
		}
		if sc.err != nil {
			return sc.err
		}
		if sc.eof {
			return nil
		}
		if err := sc.dst.Write(sc.drain); err != nil {
			return err
		}
		if sc.err != nil {
			return sc.err
		}
	}
}

// tcpSocket returns c's socket when c is a TCP connection: a client's
// *net.TCPConn or a backend's *backendConn.
func tcpSocket(c net.Conn) (syscall.Conn, bool) {
	switch c := c.(type) {
	case *net.TCPConn:
		return c, true
	case *backendConn:
		return c, true
	}
	return nil, false
}

// shutdownWrite half-closes a TCP socket (shutdown(2), SHUT_WR) with a
// raw system call: it never blocks, and the kernel sends the FIN, and on
// a local network processes the peer's side of it, inside the call, where
// the runtime would only hand the processor to another thread. handled is
// false for other connections.
func shutdownWrite(c net.Conn) (handled bool, err error) {
	s, ok := tcpSocket(c)
	if !ok {
		return false, nil
	}
	raw, err := s.SyscallConn()
	if err != nil {
		return true, err
	}
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = unix.RawSyscall(unix.SYS_SHUTDOWN, fd, unix.SHUT_WR, 0)
	}); err != nil {
		return true, err
	}
	if errno != 0 {
		return true, os.NewSyscallError("shutdown", errno)
	}
	return true, nil
}
