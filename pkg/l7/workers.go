package l7

import "sync"

// workers runs new connections, quiet connections that woke up, and
// HTTP/2 streams on goroutines that outlive them. A fresh goroutine per
// stream or connection would start with a small stack and grow it, copy
// after copy, to the depth of the proxy pipeline and of a TLS write: a
// seventh of the CPU time of small HTTP/2 requests, and a twentieth with
// a new connection per request. A parked worker keeps its stack (until
// garbage collections shrink it, which they do to idle stacks) and takes
// the next job of any connection.
type workers struct {
	mu      sync.Mutex
	idle    []chan job
	stopped bool
}

// maxIdleWorkers bounds the parked workers of a server, and so the memory
// their stacks hold once a burst is over.
const maxIdleWorkers = 128

// job is work for a worker: the connection c to serve from its start, or
// (resume) from its next request after it was quiet; else the HTTP/2
// stream st of hc, to serve its request, or answer with status when that
// is not 0.
type job struct {
	c      *conn
	resume bool

	hc     *h2Conn
	st     *h2Stream
	status int
}

// do runs the job.
func (j *job) do() {
	switch {
	case j.c == nil:
		j.hc.runStream(j.st, j.status)
	case j.resume:
		j.c.serveRequests()
	default:
		j.c.serve()
	}
}

// run does j on a parked worker, or on a new one.
func (w *workers) run(j job) {
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

func (w *workers) loop(j job) {
	ch := make(chan job, 1)
	for {
		j.do()
		j = job{}
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
func (w *workers) park(ch chan job) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || len(w.idle) >= maxIdleWorkers {
		return false
	}
	w.idle = append(w.idle, ch)
	return true
}

// stop ends the parked workers; those still busy end after their job.
func (w *workers) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for _, ch := range w.idle {
		close(ch)
	}
	w.idle = nil
}
