package l4

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loops: on Linux a TCPProxy serving a *net.TCPListener moves
// its connections on a few goroutines, one per GOMAXPROCS, each waiting in
// an epoll(7) instance of its own for every socket it owns, as HAProxy's
// threads do. A connection's sockets are raw non-blocking descriptors that
// never enter the Go runtime's poller, so a byte arriving costs one
// epoll_wait return shared by every socket ready at the time, where a
// goroutine per direction cost a park and a wake-up, and often the wake
// of an idle thread, for each read.

// Event tokens: an epoll event carries the slot of its flow (Fd) and a
// tag (Pad) holding the slot's generation and what the descriptor is.
const (
	kindClient uint32 = iota
	kindBackend
	kindListener
	kindWake
	kindBits = 2
)

// loopEvents is how many events one epoll_wait may return.
const loopEvents = 256

// acceptBatch is how many connections one listener event accepts before
// the loop serves the sockets already ready. The listener is level
// triggered, so the rest wait for the next round.
const acceptBatch = 16

// pumpBudget is how many bytes one direction may move in one go before
// the loop serves other connections; a direction that used its budget
// goes on in the next round.
const pumpBudget = 1 << 20

// socketEvents are what a connection's sockets are registered for, once,
// edge triggered: readable, writable, and the peer's end.
const socketEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// eventLoop is one goroutine's epoll instance and the connections it owns.
// Everything in it but the command queue belongs to the loop's goroutine.
type eventLoop struct {
	proxy *TCPProxy
	epfd  int
	// ep is epfd on the runtime's poller, where the loop waits: an epoll
	// descriptor is readable while events are ready in it.
	ep       *os.File
	epRaw    syscall.RawConn
	deadline time.Time // ep's read deadline, zero for none
	wake     int       // an eventfd: commands are waiting

	mu     sync.Mutex // guards cmds, closed and the eventfd's life
	cmds   []func()
	closed bool          // the loop has ended: nothing more runs on it
	done   chan struct{} // closed when the loop's goroutine returns

	flows   []*tcpFlow // by slot; nil for a free slot
	spare   []*tcpFlow // ended flows, for reuse
	free    []int32    // free slots
	nflows  int
	scratch []byte // a read's bytes on their way to the other socket

	listeners []*listenerState // the listeners this loop accepts on, by token
	again     []pumpRef        // directions that used their budget
	// connecting holds connection attempts in the order they started,
	// which with one connect timeout for all is the order they expire.
	connecting []connectDeadline
	nextSweep  time.Time // the next idle check; zero without idle timeout
	now        time.Time // when the last epoll_wait returned
	gen        uint32    // the last flow's generation
	// noKernelWait: the kernel has no epoll_pwait2 (see waitInKernel).
	noKernelWait bool
	stopped      bool
	events       [loopEvents]unix.EpollEvent
}

// pumpRef names one direction of a flow: up is client to backend.
type pumpRef struct {
	f   *tcpFlow
	gen uint32
	up  bool
}

// connectDeadline is when one connection attempt of f times out; gen
// tells f from a later flow that reuses its memory.
type connectDeadline struct {
	f       *tcpFlow
	gen     uint32
	attempt int
	at      time.Time
}

// loopListener is a listening socket the loops accept on: a duplicate of
// the Serve listener's descriptor, so that it stays valid until every loop
// has let go of it whoever closes the listener.
type loopListener struct {
	fd   int
	addr string
	// fatal receives the first accept error no waiting can cure; Serve
	// returns it.
	fatal chan error
	once  sync.Once
}

// listenerState is one loop's view of a listener: whether it is in the
// epoll set, and its back-off after running out of descriptors.
type listenerState struct {
	ln    *loopListener
	armed bool
	// settled: an accept found the queue empty, so every connection
	// accepted since was made after the listener got TCP_NODELAY, and
	// inherited it; before, each gets it set.
	settled bool
	backoff time.Duration
	until   time.Time
}

func newEventLoop(p *TCPProxy) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile puts it on the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	epRaw, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		ep.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	l := &eventLoop{proxy: p, epfd: epfd, ep: ep, epRaw: epRaw, wake: wake,
		scratch: make([]byte, copyBufferSize), done: make(chan struct{})}
	if err := l.ctl(unix.EPOLL_CTL_ADD, wake, unix.EPOLLIN, 0, kindWake); err != nil {
		l.closeFds()
		return nil, err
	}
	if idle := p.idleTimeout(); idle > 0 {
		l.nextSweep = time.Now().Add(idlePeriod(idle))
	}
	return l, nil
}

func (l *eventLoop) closeFds() {
	l.ep.Close()
	unix.Close(l.wake)
}

// ctl adds, modifies or removes fd in the loop's epoll set, with a token
// of slot, generation and kind. A raw system call: epoll_ctl never
// blocks.
func (l *eventLoop) ctl(op, fd int, events uint32, slot int32, tag uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: slot, Pad: int32(tag)}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(l.epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0)
	if errno != 0 {
		return os.NewSyscallError("epoll_ctl", errno)
	}
	return nil
}

// post queues cmd for the loop's goroutine and wakes it; false means the
// loop has ended and cmd will never run.
func (l *eventLoop) post(cmd func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.cmds = append(l.cmds, cmd)
	one := uint64(1)
	unix.Write(l.wake, (*[8]byte)(unsafe.Pointer(&one))[:])
	return true
}

// call runs cmd on the loop's goroutine and returns when it has run, or
// at once when the loop has ended.
func (l *eventLoop) call(cmd func()) {
	done := make(chan struct{})
	if l.post(func() {
		cmd()
		close(done)
	}) {
		<-done
	}
}

// run is the loop: wait for events, serve them, run the commands, until a
// stop command.
func (l *eventLoop) run() {
	for !l.stopped {
		n := l.wait()
		l.now = time.Now()
		for i := range n {
			l.dispatch(&l.events[i])
		}
		l.runAgain()
		l.expireConnects()
		l.sweepIdle()
		l.rearmListeners()
	}
	l.mu.Lock()
	l.closed = true
	l.closeFds()
	l.mu.Unlock()
	close(l.done)
}

// wait returns the number of events ready. It looks without blocking,
// in a raw system call that costs the runtime nothing; when nothing is
// ready and no direction waits for another turn, it waits briefly in the
// kernel (waitInKernel), then parks the goroutine on the runtime's poller
// until the epoll descriptor is readable or the next deadline passes. Parking, unlike a blocking epoll_wait, gives the
// goroutine's processor back at once: a system call would hold it until
// the runtime's monitor took it back, 20 µs to 10 ms later, while the
// goroutines of the rest of the process waited.
func (l *eventLoop) wait() int {
	n := l.poll()
	if n > 0 || len(l.again) > 0 {
		return n
	}
	if n = l.waitInKernel(); n > 0 {
		return n
	}
	l.setDeadline()
	err := l.epRaw.Read(func(uintptr) bool {
		n = l.poll()
		return n > 0
	})
	if err != nil { // the deadline passed: timers are due
		l.deadline = time.Time{}
		l.ep.SetReadDeadline(time.Time{})
	}
	return n
}

// kernelWait is how long a loop with nothing to do waits for its next
// event in the kernel before it parks on the runtime's poller.
const kernelWait = 300 * time.Microsecond

// waitInKernel waits up to kernelWait for events in epoll_pwait2 itself, a
// raw system call, holding the loop's processor as HAProxy's threads hold
// theirs. Under load the next event comes within it and the kernel wakes
// the loop's own thread directly; parking at once costs a wake-up through
// the runtime's poller and scheduler for nearly every event, which left
// the lab's two processors 7-9 % idle and cost 5-8 % of the connections a
// second (BENCHMARKS.md). The wait is short, so that the processor goes
// back to the process's other goroutines (BenchmarkTCPConnection, whose
// clients share the process, is unchanged), and a garbage collection's
// pause is held up by no more, once the loop is quiet. Kernels before
// 5.11 have no epoll_pwait2: their loops park at once.
func (l *eventLoop) waitInKernel() int {
	if l.noKernelWait {
		return 0
	}
	ts := unix.NsecToTimespec(int64(kernelWait))
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(l.epfd),
		uintptr(unsafe.Pointer(&l.events[0])), loopEvents, uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch errno {
	case 0:
		return int(r)
	case unix.ENOSYS:
		l.noKernelWait = true
	}
	return 0
}

// poll returns the events ready now.
func (l *eventLoop) poll() int {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
		uintptr(unsafe.Pointer(&l.events[0])), loopEvents, 0, 0, 0)
	if errno != 0 {
		return 0 // EINTR: look again
	}
	return int(r)
}

// setDeadline bounds the wait by the next connect deadline, idle check or
// listener re-arm. A deadline already set that comes no later is kept:
// waking early costs one round, and resetting the runtime's timer on
// every wait would cost more.
func (l *eventLoop) setDeadline() {
	next := l.nextDeadline()
	switch {
	case next.IsZero():
		return // a deadline already set wakes the loop once, harmlessly
	case !l.deadline.IsZero() && !l.deadline.After(next):
		return
	}
	l.deadline = next
	l.ep.SetReadDeadline(next)
}

// nextDeadline is when the loop must run without events: the next
// connect deadline, idle check or listener re-arm; zero for none.
func (l *eventLoop) nextDeadline() time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if len(l.connecting) > 0 {
		earliest(l.connecting[0].at)
	}
	if l.nflows > 0 {
		earliest(l.nextSweep)
	}
	for _, s := range l.listeners {
		if s != nil && !s.armed {
			earliest(s.until)
		}
	}
	return next
}

func (l *eventLoop) dispatch(ev *unix.EpollEvent) {
	tag := uint32(ev.Pad)
	switch tag & (1<<kindBits - 1) {
	case kindWake:
		l.runCommands()
	case kindListener:
		l.accept(ev.Fd)
	default:
		f := l.flows[ev.Fd]
		if f == nil || f.gen != tag>>kindBits {
			return // the flow ended earlier in this round
		}
		f.event(tag&(1<<kindBits-1) == kindClient, ev.Events)
	}
}

func (l *eventLoop) runCommands() {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, cmd := range cmds {
		cmd()
	}
}

// runAgain gives the directions that used their budget another turn.
func (l *eventLoop) runAgain() {
	if len(l.again) == 0 {
		return
	}
	again := l.again
	l.again = nil
	for _, r := range again {
		if l.flows[r.f.slot] == r.f && r.f.gen == r.gen {
			r.f.pump(r.up)
		}
	}
}

// newSlot files f in the slot table.
func (l *eventLoop) newSlot(f *tcpFlow) {
	if n := len(l.free); n > 0 {
		f.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.flows[f.slot] = f
	} else {
		f.slot = int32(len(l.flows))
		l.flows = append(l.flows, f)
	}
	l.nflows++
}

// maxSpareFlows bounds the ended flows a loop keeps for reuse.
const maxSpareFlows = 1024

// newFlow returns a flow's memory: an ended flow's, or new. A loop
// reuses its flows, so that a connection allocates nothing. Whatever may
// still point at an ended flow (a queued event, a connect deadline, a
// direction's next turn, a dial under way elsewhere) checks its
// generation first.
func (l *eventLoop) newFlow() *tcpFlow {
	if n := len(l.spare); n > 0 {
		f := l.spare[n-1]
		l.spare[n-1] = nil
		l.spare = l.spare[:n-1]
		return f
	}
	return new(tcpFlow)
}

// spareFlow keeps an ended flow for reuse.
func (l *eventLoop) spareFlow(f *tcpFlow) {
	if len(l.spare) < maxSpareFlows {
		l.spare = append(l.spare, f)
	}
}

// freeSlot empties f's slot; the next flow in it has another generation,
// so events still queued for f find nothing.
func (l *eventLoop) freeSlot(f *tcpFlow) {
	l.flows[f.slot] = nil
	l.free = append(l.free, f.slot)
	l.nflows--
}

// expireConnects fails the connection attempts whose time is up.
func (l *eventLoop) expireConnects() {
	for len(l.connecting) > 0 {
		d := l.connecting[0]
		if d.at.After(l.now) {
			break
		}
		l.connecting[0] = connectDeadline{}
		l.connecting = l.connecting[1:]
		if d.f.gen == d.gen && d.f.connecting && d.f.attempt == d.attempt && !d.f.closed {
			d.f.connectFailed(fmt.Errorf("connect to %s: %w", d.f.b.Addr, os.ErrDeadlineExceeded))
		}
	}
	if len(l.connecting) == 0 {
		l.connecting = l.connecting[:0:0] // let the array go
	}
}

// idlePeriod is how often connections are checked for activity: a
// connection closes between IdleTimeout and IdleTimeout plus a quarter
// after its last byte moved.
func idlePeriod(idle time.Duration) time.Duration {
	return max(idle/idleChecksPerTimeout, time.Millisecond)
}

// sweepIdle closes the connections on which nothing moved for the idle
// timeout. A connection the loop has not moved a byte of for that long
// may still be busy in the kernel (a slow reader draining a full send
// buffer), so its sockets' counters are read first, and it closes only
// when they have not changed since the last check.
func (l *eventLoop) sweepIdle() {
	if l.nextSweep.IsZero() || l.now.Before(l.nextSweep) {
		return
	}
	idle := l.proxy.idleTimeout()
	l.nextSweep = l.now.Add(idlePeriod(idle))
	for _, f := range l.flows {
		if f == nil || f.connecting || f.closed {
			continue
		}
		if l.now.Sub(f.lastActive) < idle-idlePeriod(idle) {
			continue
		}
		a := f.kernelActivity()
		if a != f.activity {
			if f.activity != notRead {
				f.lastActive = l.now
			}
			f.activity = a
			continue
		}
		if l.now.Sub(f.lastActive) >= idle {
			l.proxy.stats.idleTimeouts.Add(1)
			f.abort(fmt.Errorf("closed: no byte moved either way for %v", idle))
		}
	}
}

// addListener starts accepting on ln.
func (l *eventLoop) addListener(ln *loopListener) {
	s := &listenerState{ln: ln}
	token := int32(len(l.listeners))
	for i, old := range l.listeners {
		if old == nil {
			token = int32(i)
			break
		}
	}
	if int(token) == len(l.listeners) {
		l.listeners = append(l.listeners, s)
	} else {
		l.listeners[token] = s
	}
	l.arm(token, s)
}

// arm puts a listener in the epoll set: level triggered, so connections
// left after a batch wake the loop again, and exclusive, so that one
// connection wakes one loop, not all.
func (l *eventLoop) arm(token int32, s *listenerState) {
	if err := l.ctl(unix.EPOLL_CTL_ADD, s.ln.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, token, kindListener); err != nil {
		s.ln.fail(fmt.Errorf("l4: accept on %s: %w", s.ln.addr, err))
		return
	}
	s.armed = true
}

func (l *eventLoop) disarm(s *listenerState) {
	if s.armed {
		l.ctl(unix.EPOLL_CTL_DEL, s.ln.fd, 0, 0, 0)
		s.armed = false
	}
}

// removeListener stops accepting on ln.
func (l *eventLoop) removeListener(ln *loopListener) {
	for i, s := range l.listeners {
		if s != nil && s.ln == ln {
			l.disarm(s)
			l.listeners[i] = nil
		}
	}
}

// rearmListeners puts back the listeners whose back-off is over.
func (l *eventLoop) rearmListeners() {
	for i, s := range l.listeners {
		if s != nil && !s.armed && !s.until.IsZero() && !l.now.Before(s.until) {
			s.until = time.Time{}
			l.arm(int32(i), s)
		}
	}
}

// accept takes up to acceptBatch connections from the listener with
// token, and starts each on its way to a backend.
func (l *eventLoop) accept(token int32) {
	if int(token) >= len(l.listeners) || l.listeners[token] == nil {
		return
	}
	s := l.listeners[token]
	for range acceptBatch {
		var rsa unix.RawSockaddrAny
		n := uint32(unsafe.Sizeof(rsa))
		r, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(s.ln.fd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			s.backoff = 0
			if !s.settled {
				if err := setNoDelay(int(r)); err != nil {
					closeFd(int(r))
					continue
				}
			}
			l.start(int(r), rawToAddrPort(&rsa))
			continue
		case unix.EAGAIN:
			s.settled = true
			return
		case unix.EINTR, unix.ECONNABORTED, unix.EPERM, unix.EPROTO:
			continue // this connection is gone; others may wait
		}
		err := os.NewSyscallError("accept4", errno)
		if !temporaryAcceptError(err) {
			l.disarm(s)
			s.ln.fail(fmt.Errorf("l4: accept on %s: %w", s.ln.addr, err))
			return
		}
		s.backoff = min(max(2*s.backoff, 5*time.Millisecond), maxAcceptBackoff)
		l.proxy.Logger.Warn("l4: accept failed; retrying", "listener", s.ln.addr, "err", err, "backoff", s.backoff)
		l.disarm(s)
		s.until = l.now.Add(s.backoff)
		return
	}
}

// fail hands err to Serve, once.
func (ln *loopListener) fail(err error) {
	ln.once.Do(func() { ln.fatal <- err })
}

// abortAll cuts every connection the loop owns.
func (l *eventLoop) abortAll() {
	for _, f := range l.flows {
		if f != nil {
			f.abort(errProxyClosing)
		}
	}
}

// stop ends the loop after this round.
func (l *eventLoop) stop() {
	l.abortAll()
	for _, s := range l.listeners {
		if s != nil {
			l.disarm(s)
		}
	}
	l.stopped = true
}

// loopSet is a proxy's event loops, and the listeners they accept on
// (guarded by the proxy's mu).
type loopSet struct {
	loops     []*eventLoop
	listeners []*loopListener
}

// startLoops makes one loop per GOMAXPROCS and starts them.
func startLoops(p *TCPProxy) (*loopSet, error) {
	n := runtime.GOMAXPROCS(0)
	s := &loopSet{}
	for range n {
		l, err := newEventLoop(p)
		if err != nil {
			for _, l := range s.loops {
				l.closeFds()
			}
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	for _, l := range s.loops {
		go l.run()
	}
	return s, nil
}

// listenerFd duplicates a TCP listener's descriptor for the loops; ok is
// false when ln is not a TCP listener.
func listenerFd(ln net.Listener) (fd int, ok bool, err error) {
	tl, isTCP := ln.(*net.TCPListener)
	if !isTCP {
		return -1, false, nil
	}
	raw, err := tl.SyscallConn()
	if err != nil {
		return -1, true, err
	}
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, true, err
	}
	if dupErr != nil {
		return -1, true, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", dupErr)
	}
	return fd, true, nil
}

// serveOnLoops serves a TCP listener on the proxy's event loops, started
// with the first; handled is false for other listeners, and when the
// loops cannot start (Serve then uses a goroutine per connection).
func (p *TCPProxy) serveOnLoops(ln net.Listener) (handled bool, err error) {
	if p.portable {
		return false, nil
	}
	fd, ok, err := listenerFd(ln)
	if !ok {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("l4: serve %s: %w", ln.Addr(), err)
	}
	// Accepted sockets inherit TCP_NODELAY from the listener: one
	// setsockopt(2) here instead of one a connection, but for those
	// already queued (see listenerState.settled).
	if err := setNoDelay(fd); err != nil {
		unix.Close(fd)
		return true, fmt.Errorf("l4: serve %s: %w", ln.Addr(), err)
	}
	set, err := p.eventLoops()
	if err != nil {
		unix.Close(fd)
		p.Logger.Warn("l4: event loops unavailable; serving a goroutine per connection", "err", err)
		return false, nil
	}
	ll := &loopListener{fd: fd, addr: ln.Addr().String(), fatal: make(chan error, 1)}
	if !p.trackOnLoops(ln, ll) {
		unix.Close(fd)
		return true, ErrProxyClosed
	}
	for _, l := range set.loops {
		l.post(func() { l.addListener(ll) })
	}
	select {
	case err := <-ll.fatal:
		p.untrackOnLoops(ln, ll)
		if p.closing.Load() {
			return true, ErrProxyClosed
		}
		return true, err
	case <-p.stopAccept:
		return true, ErrProxyClosed
	}
}

// eventLoops returns the proxy's loops, starting them the first time.
func (p *TCPProxy) eventLoops() (*loopSet, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loops == nil {
		set, err := startLoops(p)
		if err != nil {
			return nil, err
		}
		p.loops = set
	}
	return p.loops, nil
}

// trackOnLoops records ln, and ll its descriptor on the loops, so that
// Shutdown and Close stop both; false means the proxy is already closing.
func (p *TCPProxy) trackOnLoops(ln net.Listener, ll *loopListener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return false
	}
	p.listeners[ln] = struct{}{}
	p.loops.listeners = append(p.loops.listeners, ll)
	return true
}

// untrackOnLoops takes ll off every loop and closes it, and forgets ln.
func (p *TCPProxy) untrackOnLoops(ln net.Listener, ll *loopListener) {
	p.mu.Lock()
	delete(p.listeners, ln)
	set := p.loops
	i := slices.Index(set.listeners, ll)
	if i >= 0 {
		set.listeners = slices.Delete(set.listeners, i, i+1)
	}
	p.mu.Unlock()
	if i >= 0 {
		set.remove(ll)
	}
}

// remove takes ll off every loop, waiting until each has, then closes it.
func (s *loopSet) remove(ll *loopListener) {
	for _, l := range s.loops {
		l.call(func() { l.removeListener(ll) })
	}
	unix.Close(ll.fd)
}

// stopLoopListeners takes every listener off the loops; when it returns,
// the loops accept nothing more. Called once the proxy is closing.
func (p *TCPProxy) stopLoopListeners() {
	p.mu.Lock()
	set := p.loops
	var lls []*loopListener
	if set != nil {
		lls, set.listeners = set.listeners, nil
	}
	p.mu.Unlock()
	for _, ll := range lls {
		set.remove(ll)
	}
}

// runningLoops returns the proxy's loops, none before the first Serve
// of a TCP listener.
func (p *TCPProxy) runningLoops() []*eventLoop {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loops == nil {
		return nil
	}
	return p.loops.loops
}

// abortLoopFlows cuts every connection on the loops and returns when they
// are closed.
func (p *TCPProxy) abortLoopFlows() {
	for _, l := range p.runningLoops() {
		l.call(l.abortAll)
	}
}

// stopLoops ends the loops, once no connection is left on them, and
// returns when their goroutines have.
func (p *TCPProxy) stopLoops() {
	for _, l := range p.runningLoops() {
		if l.post(l.stop) {
			<-l.done
		}
	}
}
