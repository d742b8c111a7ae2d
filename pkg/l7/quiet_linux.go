package l7

import (
	"encoding/binary"
	"math"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// quietSet holds a Server's quiet keep-alive connections: those that
// served a request and then waited longer than shedAfter for the next.
// They wait in one epoll set, watched by one goroutine, rather than each
// on a goroutine of its own: an idle client then costs its socket and its
// conn, not a goroutine and its stack (2 KiB at least) as well. When a
// quiet connection becomes readable (a request, EOF or an error) it is
// served on a new goroutine; when its idle deadline passes it is closed.
//
// The set starts with the first quiet connection. Where it cannot (no
// epoll), add reports false and the connection waits on a goroutine.
type quietSet struct {
	mu      sync.Mutex
	epfd    int             // the epoll set, once started
	wakefd  int             // an eventfd in the set: wakes the watcher
	conns   map[int32]*conn // by descriptor; nil until started
	next    time.Time       // the earliest idle deadline in conns; zero if none
	stopped bool
}

// add puts c in the set, to wait without a goroutine until it is readable
// or its idle deadline passes. It reports false when c must wait on a
// goroutine instead.
func (q *quietSet) add(c *conn) bool {
	fd := quietFD(c)
	if fd < 0 {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || (q.conns == nil && !q.start()) {
		return false
	}
	// One-shot: after one event the descriptor stays in the set, disarmed,
	// until take removes it. Readiness already there is reported at once.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	if unix.EpollCtl(q.epfd, unix.EPOLL_CTL_ADD, fd, &ev) != nil {
		return false
	}
	q.conns[int32(fd)] = c
	q.schedule(c.idleUntil)
	return true
}

// quietFD returns the descriptor of c's socket, or -1 when c is no plain
// TCP connection. It is looked up here, as a connection goes quiet, rather
// than for every connection accepted.
func quietFD(c *conn) int {
	fd := -1
	if c.io.rc == nil || c.io.rc.Control(func(d uintptr) { fd = int(d) }) != nil {
		return -1
	}
	return fd
}

// start makes the epoll set and starts its watcher; q.mu is held.
func (q *quietSet) start() bool {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return false
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev) != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return false
	}
	q.epfd, q.wakefd = epfd, wakefd
	q.conns = map[int32]*conn{}
	go q.watch()
	return true
}

// schedule makes the watcher wake by t at the latest; q.mu is held.
func (q *quietSet) schedule(t time.Time) {
	if q.next.IsZero() || t.Before(q.next) {
		q.next = t
		q.wake()
	}
}

// wake interrupts the watcher's wait; q.mu is held.
func (q *quietSet) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(q.wakefd, one[:])
}

// take removes the connection on fd from the set and returns it, or nil
// if it is not there; q.mu is held. Whoever takes a connection owns it.
func (q *quietSet) take(fd int32) *conn {
	c, ok := q.conns[fd]
	if !ok {
		return nil
	}
	delete(q.conns, fd)
	unix.EpollCtl(q.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	return c
}

// watch waits for the set's connections to become readable or to time
// out, until the set is stopped.
func (q *quietSet) watch() {
	events := make([]unix.EpollEvent, 256)
	var gone []*conn
	for {
		q.mu.Lock()
		timeout := waitMillis(q.next, time.Now())
		q.mu.Unlock()
		// A blocking system call: the runtime hands this goroutine's
		// processor to others while it waits.
		n, err := unix.EpollWait(q.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			n = 0
		}
		q.mu.Lock()
		if q.stopped {
			q.mu.Unlock()
			unix.Close(q.epfd)
			unix.Close(q.wakefd)
			return
		}
		gone = gone[:0]
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(q.wakefd) {
				var buf [8]byte
				unix.Read(q.wakefd, buf[:])
				continue
			}
			c := q.take(ev.Fd)
			switch {
			case c == nil:
			case clientGone(ev):
				gone = append(gone, c)
			default:
				c.srv.workers.run(job{c: c, resume: true})
			}
		}
		q.expire(time.Now())
		q.mu.Unlock()
		// Outside q.mu, which must not be held while taking the server's.
		for i, c := range gone {
			c.finish()
			gone[i] = nil
		}
	}
}

// clientGone reports whether the event says that the client closed a
// quiet connection without sending anything more. Such a connection is
// closed by the watcher itself, with no goroutine and no read buffer:
// when thousands of idle clients leave at once, serving each one to read
// its EOF cost a goroutine and a buffer apiece, and was the peak of
// weir's memory in scripts/bench's idle10k. The peek tells a bare FIN
// from a last request sent before it.
func clientGone(ev unix.EpollEvent) bool {
	if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return false
	}
	n, err := peek(int(ev.Fd))
	return err != unix.EAGAIN && (err != nil || n == 0)
}

// expire closes the connections whose idle deadline is past and finds
// the next deadline; q.mu is held. It scans the set only when the
// earliest deadline it knows of has come.
func (q *quietSet) expire(now time.Time) {
	if q.next.IsZero() || now.Before(q.next) {
		return
	}
	q.next = time.Time{}
	for fd, c := range q.conns {
		if now.Before(c.idleUntil) {
			if q.next.IsZero() || c.idleUntil.Before(q.next) {
				q.next = c.idleUntil
			}
			continue
		}
		q.take(fd)
		// Closing drains input for a moment: not on the watcher.
		go c.timeOut()
	}
}

// expireBy makes every connection in the set stop waiting at t at the
// latest (a graceful Shutdown's grace).
func (q *quietSet) expireBy(t time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range q.conns {
		if t.Before(c.idleUntil) {
			c.idleUntil = t
		}
	}
	if q.conns != nil {
		q.schedule(t)
	}
}

// stop closes every connection still in the set and ends the watcher;
// later adds report false.
func (q *quietSet) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.stopped = true
	for fd := range q.conns {
		go q.take(fd).finish()
	}
	if q.conns != nil {
		q.wake()
	}
}

// waitMillis is the epoll timeout that ends at next: -1 (no timeout) when
// next is zero, rounded up so that the watcher does not wake early.
func waitMillis(next, now time.Time) int {
	if next.IsZero() {
		return -1
	}
	d := next.Sub(now)
	if d <= 0 {
		return 0
	}
	return int(min((d+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
}
