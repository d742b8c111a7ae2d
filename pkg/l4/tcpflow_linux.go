package l4

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// errProxyClosing ends the connections Close cuts.
var errProxyClosing = errors.New("cut short: the proxy is closing")

// tcpFlow is one proxied connection on an event loop: the client's socket,
// and once a connection attempt has started, the backend's. Only its
// loop's goroutine touches it.
type tcpFlow struct {
	loop            *eventLoop
	slot            int32
	gen             uint32
	client, backend int // descriptors; backend is -1 until an attempt starts
	peer            netip.AddrPort

	b        *lb.Backend      // Acquired while set
	counters *BackendCounters // b's share, nil when it has none

	connecting bool // an attempt is under way
	closed     bool
	attempt    int      // attempts started
	tried      []string // the backends tried, in triedBuf until it overflows
	triedBuf   [2]string
	failures   []error

	up, down direction // client to backend, backend to client
	in, out  uint64    // bytes moved up and down
	ended    int       // directions that reached their end cleanly

	started, lastActive time.Time
	activity            uint64 // the kernel's counters at the last idle check; notRead after a byte moved
}

// direction is the state of one way's copy. Bytes a write could not take
// wait in buf[off:end]; once a read fills the loop's scratch buffer (a
// bulk transfer) the direction moves its bytes through pipe with
// splice(2) instead, in the kernel. Both go back to their pools whenever
// they are empty, so an idle connection holds neither.
type direction struct {
	buf      *[]byte
	off, end int
	pipe     *pipe
	spliced  bool
	// srcClosing: an event said the source's peer has closed or
	// half-closed. Until then a read shorter than asked means the
	// source is drained, and the next byte or the end will raise an
	// event; after, only a read that returns the end or EAGAIN does.
	srcClosing bool
	eof        bool // the source ended; the destination is shut once all is out
	done       bool // all is out and the destination was told
}

// start takes a new client connection on fd and begins connecting it to
// a backend.
func (l *eventLoop) start(fd int, peer netip.AddrPort) {
	p := l.proxy
	l.gen = (l.gen + 1) & (1<<(32-kindBits) - 1)
	f := l.newFlow()
	*f = tcpFlow{loop: l, gen: l.gen, client: fd, backend: -1, peer: peer,
		started: l.now, lastActive: l.now, activity: notRead}
	f.tried = f.triedBuf[:0]
	l.newSlot(f)
	p.wg.Add(1)
	p.stats.connections.Add(1)
	p.stats.activeConnections.Add(1)
	// TCP_NODELAY comes from the listener (see serveOnLoops). With no
	// idle timeout, keep-alive probes are the only way to find a
	// vanished client.
	if p.keepAlive() == 0 {
		if err := setKeepAlive(fd); err != nil {
			f.unservable(err)
			return
		}
	}
	f.connectNext()
}

// connectNext starts a connection attempt to the first usable backend not
// tried yet, or gives up when the attempts are spent, no backend is left,
// or the proxy is closing.
func (f *tcpFlow) connectNext() {
	p := f.loop.proxy
	attempts := 1 + max(p.MaxRetries, 0)
	for f.attempt < attempts && (f.attempt == 0 || p.ctx.Err() == nil) {
		var accept func(*lb.Backend) bool
		if len(f.tried) > 0 {
			accept = f.untried
		}
		key := flowKey(f.peer)
		b, ok := p.LB.SelectWith(key[:], anyCandidate, accept)
		if !ok {
			break
		}
		f.attempt++
		f.tried = append(f.tried, b.Addr)
		b.Acquire()
		f.b, f.connecting = b, true
		up, err := f.dial(b)
		if err == nil {
			if up {
				f.connected(0)
			}
			return // under way, or up
		}
		f.attemptFailed(err)
	}
	if len(f.failures) == 0 {
		f.unservable(ErrNoBackend)
		return
	}
	f.unservable(connectError(f.tried, f.failures))
}

func (f *tcpFlow) untried(b *lb.Backend) bool {
	for _, t := range f.tried {
		if t == b.Addr {
			return false
		}
	}
	return true
}

// attemptFailed ends the current attempt: its socket is closed, its
// backend Released, and the failure counted.
func (f *tcpFlow) attemptFailed(err error) {
	if f.backend >= 0 {
		closeFd(f.backend)
		f.backend = -1
	}
	f.b.Release()
	f.b, f.connecting = nil, false
	f.loop.proxy.stats.connectFailures.Add(1)
	f.failures = append(f.failures, err)
}

// connectFailed moves on from a failed attempt to the next backend.
func (f *tcpFlow) connectFailed(err error) {
	f.attemptFailed(err)
	f.connectNext()
}

// dial starts connecting to b; up reports the connection made already.
// An IP address and port is connected here, without waiting; anything
// else (a host name to resolve, a Unix socket) is dialled on a goroutine,
// which hands the socket back to the loop.
func (f *tcpFlow) dial(b *lb.Backend) (up bool, err error) {
	if b.Network() == "tcp" {
		if ap, err := netip.ParseAddrPort(b.DialAddr()); err == nil && ap.Addr().Zone() == "" {
			return f.dialRaw(ap)
		}
	}
	f.dialElsewhere(b)
	return false, nil
}

// dialRaw starts a non-blocking connection to ap. up reports it made
// already: on a local network the handshake often completes inside
// connect(2), and the loop then starts the copy at once. Otherwise the
// loop hears of the outcome when the socket becomes writable or fails.
func (f *tcpFlow) dialRaw(ap netip.AddrPort) (up bool, err error) {
	l, p := f.loop, f.loop.proxy
	family, sa, salen := rawSockaddr(ap)
	r, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if errno != 0 {
		return false, fmt.Errorf("connect to %s: %w", ap, os.NewSyscallError("socket", errno))
	}
	fd := int(r)
	f.backend = fd
	if err := setNoDelay(fd); err != nil {
		return false, fmt.Errorf("connect to %s: %w", ap, err)
	}
	if p.keepAlive() == 0 {
		if err := setKeepAlive(fd); err != nil {
			return false, fmt.Errorf("connect to %s: %w", ap, err)
		}
	}
	_, _, errno = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(salen))
	if errno != 0 && errno != unix.EINPROGRESS && errno != unix.EINTR {
		return false, fmt.Errorf("connect to %s: %w", ap, os.NewSyscallError("connect", errno))
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, socketEvents, f.slot, f.gen<<kindBits|kindBackend); err != nil {
		return false, fmt.Errorf("connect to %s: %w", ap, err)
	}
	if errno == 0 || peerConnected(fd) {
		return true, nil
	}
	l.connecting = append(l.connecting, connectDeadline{f: f, gen: f.gen, attempt: f.attempt, at: l.now.Add(p.connectTimeout())})
	return false, nil
}

// peerConnected reports whether a socket's connection is up.
func peerConnected(fd int) bool {
	var rsa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(rsa))
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	return errno == 0
}

// dialElsewhere connects to b on a goroutine with net.Dialer, which
// resolves names and bounds the attempt by the connect timeout, and posts
// the outcome to the loop: a descriptor of the loop's own, off the
// runtime's poller.
func (f *tcpFlow) dialElsewhere(b *lb.Backend) {
	l, p := f.loop, f.loop.proxy
	gen, attempt := f.gen, f.attempt
	deadline := time.Now().Add(p.connectTimeout())
	p.workers.run(func() {
		d := net.Dialer{Deadline: deadline, KeepAlive: p.keepAlive()}
		fd := -1
		conn, err := d.DialContext(p.ctx, b.Network(), b.DialAddr())
		if err == nil {
			fd, err = detachFd(conn)
			conn.Close()
		}
		posted := l.post(func() { f.dialed(gen, attempt, fd, err) })
		if !posted && fd >= 0 {
			closeFd(fd)
		}
	})
}

// detachFd returns a duplicate of conn's socket for the loop.
func detachFd(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no socket", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", dupErr)
	}
	return fd, nil
}

// dialed takes the outcome of dialElsewhere, unless the flow has moved on
// (closed, or another attempt).
func (f *tcpFlow) dialed(gen uint32, attempt, fd int, err error) {
	if f.closed || f.gen != gen || f.attempt != attempt || !f.connecting {
		if fd >= 0 {
			closeFd(fd)
		}
		return
	}
	if err != nil {
		f.connectFailed(err)
		return
	}
	f.backend = fd
	if err := f.loop.ctl(unix.EPOLL_CTL_ADD, fd, socketEvents, f.slot, f.gen<<kindBits|kindBackend); err != nil {
		f.connectFailed(err)
		return
	}
	f.connected(0)
}

// event serves an epoll event on the client's socket (client) or the
// backend's.
func (f *tcpFlow) event(client bool, events uint32) {
	if f.connecting {
		if !client {
			f.connectEvent(events)
		}
		return
	}
	if events&unix.EPOLLERR != 0 {
		f.socketError(client)
		return
	}
	readable := events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0
	writable := events&(unix.EPOLLOUT|unix.EPOLLHUP) != 0
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		f.reading(client).srcClosing = true
	}
	// The client's socket reads into the up direction and writes out of
	// the down one; the backend's the other way round.
	if readable {
		f.pump(client)
	}
	// Writable matters only to a direction holding bytes its
	// destination did not take: reading is driven by the source's own
	// events, and edge-triggered epoll reports writable with every event
	// on a socket that has room.
	if w := f.reading(!client); writable && !f.closed && w.holds() {
		f.pump(!client)
	}
}

// holds reports whether the direction has bytes waiting for its
// destination.
func (d *direction) holds() bool {
	return d.off < d.end || d.pipe != nil && d.pipe.buffered > 0
}

// reading returns the direction that reads from the client's socket
// (client) or the backend's.
func (f *tcpFlow) reading(client bool) *direction {
	if client {
		return &f.up
	}
	return &f.down
}

// connectEvent is the outcome of a non-blocking connect: writable means
// connected; an error or hang-up means refused, unreachable or reset.
func (f *tcpFlow) connectEvent(events uint32) {
	if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		err := socketErr(f.backend)
		if err == nil {
			err = errors.New("connection closed while connecting")
		}
		f.connectFailed(fmt.Errorf("connect to %s: %w", f.b.Addr, err))
		return
	}
	if events&unix.EPOLLOUT != 0 {
		f.connected(events)
	}
}

// connected starts the copy once the backend's socket is up: the PROXY
// protocol header first where asked, then the client's bytes, most often
// already waiting; events are the backend socket's, which may say it has
// spoken too.
func (f *tcpFlow) connected(events uint32) {
	l, p := f.loop, f.loop.proxy
	f.connecting = false
	f.counters = countersOf(f.b)
	if p.ProxyProtocol != 0 {
		if err := f.announce(p.ProxyProtocol); err != nil {
			f.connectFailed(fmt.Errorf("%s: %w", f.b.Addr, err))
			return
		}
	}
	if f.counters != nil {
		f.counters.flows.Add(1)
	}
	f.lastActive = l.now
	f.pump(true)
	if f.closed {
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, f.client, socketEvents, f.slot, f.gen<<kindBits|kindClient); err != nil {
		f.abort(err)
		return
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		f.down.srcClosing = true
	}
	if events&unix.EPOLLIN != 0 {
		f.pump(false)
	}
}

// announce writes the PROXY protocol header on the new backend
// connection. What the socket does not take at once waits in the up
// direction, ahead of the client's bytes.
func (f *tcpFlow) announce(v proxyproto.Version) error {
	local, err := localAddrPort(f.client)
	if err != nil {
		return fmt.Errorf("send PROXY protocol header: %w", err)
	}
	var hb [proxyHeaderMax]byte
	h, err := proxyproto.Proxied(v, f.peer, local).Append(hb[:0])
	if err != nil {
		return fmt.Errorf("send PROXY protocol header: %w", err)
	}
	n, errno := send(f.backend, h)
	if errno == unix.EAGAIN {
		n, errno = 0, 0
	}
	if errno != 0 {
		return fmt.Errorf("send PROXY protocol header: %w", os.NewSyscallError("write", errno))
	}
	if n < len(h) {
		f.hold(&f.up, h[n:])
	}
	return nil
}

// proxyHeaderMax bounds a PROXY protocol header with addresses: 107 bytes
// in version 1, 52 in version 2.
const proxyHeaderMax = 108

// hold keeps b for d to write when its destination has room.
func (f *tcpFlow) hold(d *direction, b []byte) {
	buf := f.loop.proxy.bufs.get()
	d.buf, d.off, d.end = buf, 0, copy(*buf, b)
}

// pump moves one direction's bytes until its source has none, its
// destination no room, its source ended, or its budget is spent (then it
// goes on in the loop's next round). up is client to backend.
func (f *tcpFlow) pump(up bool) {
	d, src, dst := &f.down, f.backend, f.client
	if up {
		d, src, dst = &f.up, f.client, f.backend
	}
	if d.done || f.closed {
		return
	}
	l := f.loop
	drained := false
	for moved := 0; moved < pumpBudget; {
		if d.off < d.end {
			n, errno := send(dst, (*d.buf)[d.off:d.end])
			switch {
			case errno == unix.EAGAIN:
				return
			case errno != 0:
				f.fail(up, "write", errno)
				return
			}
			d.off += n
			f.count(up, n)
			if d.off < d.end {
				continue
			}
			l.proxy.bufs.put(d.buf)
			d.buf, d.off, d.end = nil, 0, 0
		}
		if d.pipe != nil && d.pipe.buffered > 0 {
			n, errno := splice(d.pipe.r, dst, d.pipe.buffered)
			switch {
			case errno == unix.EAGAIN:
				return
			case errno != nil:
				f.fail(up, "splice", errno)
				return
			case n == 0:
				f.abort(f.directionError(up, errors.New("splice moved no bytes out of a pipe that holds some")))
				return
			}
			d.pipe.buffered -= n
			f.count(up, n)
			continue
		}
		if d.eof {
			f.finish(up)
			return
		}
		if drained {
			return
		}
		n, more, ok := f.fill(d, src, dst, up)
		if !ok {
			return
		}
		drained = !more
		moved += n
	}
	l.again = append(l.again, pumpRef{f: f, gen: f.gen, up: up})
}

// fill reads what src has: into the pipe once the direction splices,
// otherwise into the loop's scratch buffer and straight on to dst, keeping
// what dst does not take. more is false when the read shows src drained
// (see srcClosing), which saves the read that would return EAGAIN; ok is
// false when src has nothing now or the flow failed.
func (f *tcpFlow) fill(d *direction, src, dst int, up bool) (n int, more, ok bool) {
	l := f.loop
	if d.spliced {
		if d.pipe == nil {
			p, err := l.proxy.pipes.get()
			if err != nil {
				f.abort(f.directionError(up, err))
				return 0, false, false
			}
			d.pipe = p
		}
		n, err := splice(src, d.pipe.w, pipeSize)
		switch {
		case err == unix.EAGAIN:
			l.proxy.pipes.put(d.pipe) // empty: give it back for the wait
			d.pipe = nil
			return 0, false, false
		case err != nil:
			f.fail(up, "splice", err)
			return 0, false, false
		}
		d.pipe.buffered += n
		d.eof = n == 0
		// A pipe fills by slots as well as bytes, so a short splice does
		// not show src drained: read on to EAGAIN.
		return n, true, true
	}
	r, errno := read(src, l.scratch)
	switch {
	case errno == unix.EAGAIN:
		return 0, false, false
	case errno != 0:
		f.fail(up, "read", errno)
		return 0, false, false
	case r == 0:
		d.eof = true
		return 0, true, true
	}
	// A read that fills the buffer is a bulk transfer: splice from now on.
	d.spliced = r == len(l.scratch)
	w, errno := send(dst, l.scratch[:r])
	switch {
	case errno == unix.EAGAIN:
		w = 0
	case errno != 0:
		f.fail(up, "write", errno)
		return 0, false, false
	}
	f.count(up, w)
	if w < r {
		f.hold(d, l.scratch[w:r])
	}
	return r, d.spliced || d.srcClosing, true
}

// count adds n bytes moved one way to the counters, and marks the flow
// active.
func (f *tcpFlow) count(up bool, n int) {
	if n == 0 {
		return
	}
	stats := &f.loop.proxy.stats
	if up {
		f.in += uint64(n)
		stats.bytesIn.Add(uint64(n))
		if f.counters != nil {
			f.counters.bytes.Add(uint64(n))
		}
	} else {
		f.out += uint64(n)
		stats.bytesOut.Add(uint64(n))
	}
	f.lastActive = f.loop.now
	f.activity = notRead
}

// finish ends a direction whose source ended and whose bytes are all out:
// its destination is half-closed so that its peer sees the end too; when
// the other way has ended already, the flow closes, which sends that end.
func (f *tcpFlow) finish(up bool) {
	d, dst := &f.down, f.client
	if up {
		d, dst = &f.up, f.backend
	}
	d.done = true
	f.release(d)
	f.ended++
	if f.ended == 2 {
		f.end(nil)
		return
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(dst), unix.SHUT_WR, 0); errno != 0 {
		f.abort(f.directionError(up, fmt.Errorf("half-close: %w", os.NewSyscallError("shutdown", errno))))
	}
}

// fail ends the flow on a failed system call of one direction.
func (f *tcpFlow) fail(up bool, op string, errno error) {
	f.abort(f.directionError(up, os.NewSyscallError(op, errno)))
}

func (f *tcpFlow) directionError(up bool, err error) error {
	if up {
		return fmt.Errorf("client to backend %s: %w", f.b.Addr, err)
	}
	return fmt.Errorf("backend %s to client: %w", f.b.Addr, err)
}

// socketError ends the flow on the error pending on one of its sockets:
// a reset, most often.
func (f *tcpFlow) socketError(client bool) {
	fd, side := f.backend, "backend "+f.b.Addr
	if client {
		fd, side = f.client, "client"
	}
	err := socketErr(fd)
	if err == nil {
		err = errors.New("socket error")
	}
	f.abort(fmt.Errorf("%s: %w", side, err))
}

// abort cuts the flow: a connected one ends with err; one still
// connecting is dropped, as one that could not be served.
func (f *tcpFlow) abort(err error) {
	if f.closed {
		return
	}
	if f.connecting {
		f.attemptFailed(err)
		f.unservable(err)
		return
	}
	f.end(err)
}

// end closes a flow that was connected: both sockets, the backend
// Released, the end logged (Debug).
func (f *tcpFlow) end(err error) {
	l, p := f.loop, f.loop.proxy
	closeFd(f.client)
	closeFd(f.backend)
	f.release(&f.up)
	f.release(&f.down)
	f.b.Release()
	if p.Logger.Enabled(p.ctx, slog.LevelDebug) {
		p.Logger.Debug("l4: connection closed", "client", f.peer.String(), "backend", f.b.Addr,
			"bytes_in", f.in, "bytes_out", f.out, "duration", l.now.Sub(f.started), "err", err)
	}
	f.forget()
}

// unservable drops a connection no backend took.
func (f *tcpFlow) unservable(err error) {
	f.loop.proxy.unservable(f.peer.String(), err)
	closeFd(f.client)
	f.forget()
}

func (f *tcpFlow) forget() {
	l := f.loop
	f.closed = true
	l.freeSlot(f)
	decrement(&l.proxy.stats.activeConnections)
	l.proxy.wg.Done()
	l.spareFlow(f)
}

// release gives a direction's buffer and pipe back to their pools; a pipe
// still holding bytes is closed.
func (f *tcpFlow) release(d *direction) {
	p := f.loop.proxy
	if d.buf != nil {
		p.bufs.put(d.buf)
		d.buf, d.off, d.end = nil, 0, 0
	}
	if d.pipe != nil {
		p.pipes.put(d.pipe)
		d.pipe = nil
	}
}

// kernelActivity sums both sockets' counters of bytes received and
// acknowledged (see socketActivity).
func (f *tcpFlow) kernelActivity() uint64 {
	return fdActivity(f.client) + fdActivity(f.backend)
}

// fdActivity returns a TCP socket's bytes received plus those its peer
// acknowledged, 0 when the kernel does not say (see socketActivity).
func fdActivity(fd int) uint64 {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return info.Bytes_received + info.Bytes_acked
}

// setNoDelay turns Nagle's algorithm off: bytes leave as they arrive.
func setNoDelay(fd int) error {
	one := int32(1)
	_, _, errno := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY,
		uintptr(unsafe.Pointer(&one)), 4, 0)
	if errno != 0 {
		return os.NewSyscallError("setsockopt TCP_NODELAY", errno)
	}
	return nil
}

// setKeepAlive turns keep-alive probes on, with Go's default timing.
func setKeepAlive(fd int) error {
	for _, o := range []struct{ level, name, value int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveInterval},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return os.NewSyscallError("setsockopt keep-alive", err)
		}
	}
	return nil
}

// closeFd closes a socket the loop owns, in a raw system call: closing a
// non-blocking socket does not wait (no SO_LINGER is set).
func closeFd(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// read, send: raw system calls on non-blocking sockets, which never wait.
func read(fd int, b []byte) (int, syscall.Errno) {
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if errno != unix.EINTR {
			return int(r), errno
		}
	}
}

func send(fd int, b []byte) (int, syscall.Errno) {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		if errno != unix.EINTR {
			return int(r), errno
		}
	}
}

// socketErr returns and clears a socket's pending error (SO_ERROR).
func socketErr(fd int) error {
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if soerr != 0 {
		return syscall.Errno(soerr)
	}
	return nil
}

// localAddrPort returns the address a socket is bound to.
func localAddrPort(fd int) (netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(rsa))
	if _, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n))); errno != 0 {
		return netip.AddrPort{}, os.NewSyscallError("getsockname", errno)
	}
	return rawToAddrPort(&rsa), nil
}

// rawToAddrPort returns the IP address and port of a socket address, the
// zero AddrPort for another family.
func rawToAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), portOf(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), portOf(sa.Port))
	}
	return netip.AddrPort{}
}

// portOf reads a sockaddr's port, stored in network byte order.
func portOf(field uint16) uint16 {
	p := (*[2]byte)(unsafe.Pointer(&field))
	return uint16(p[0])<<8 | uint16(p[1])
}
