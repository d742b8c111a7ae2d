package l7

import "sync"

// workers runs HTTP/2 streams on goroutines that outlive them. A fresh
// goroutine per stream would start with a small stack and grow it, copy
// after copy, to the depth of the proxy pipeline and of a TLS write: a
// seventh of the CPU time of small HTTP/2 requests. A parked worker keeps
// its stack (until garbage collections shrink it, which they do to idle
// stacks) and takes the next stream of any connection.
type workers struct {
	mu      sync.Mutex
	idle    []chan h2Job
	stopped bool
}

// maxIdleWorkers bounds the parked workers of a server, and so the memory
// their stacks hold once a burst is over.
const maxIdleWorkers = 128

// h2Job is a stream to serve: its request, or a direct answer when
// status is not 0.
type h2Job struct {
	hc     *h2Conn
	st     *h2Stream
	status int
}

// run serves j on a parked worker, or on a new one.
func (w *workers) run(j h2Job) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		ch := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- j
		return
	}
	w.mu.Unlock()
	go w.loop(j)
}

func (w *workers) loop(j h2Job) {
	ch := make(chan h2Job, 1)
	for {
		j.hc.runStream(j.st, j.status)
		j = h2Job{}
		if !w.park(ch) {
			return
		}
		var ok bool
		if j, ok = <-ch; !ok {
			return
		}
	}
}

// park offers the worker listening on ch for the next job, unless enough
// are parked or the server stopped.
func (w *workers) park(ch chan h2Job) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || len(w.idle) >= maxIdleWorkers {
		return false
	}
	w.idle = append(w.idle, ch)
	return true
}

// stop ends the parked workers; those still busy end after their stream.
func (w *workers) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for _, ch := range w.idle {
		close(ch)
	}
	w.idle = nil
}
