package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero Options.
const (
	// DefaultBuffer is the lines a Writer holds: at a typical 200 bytes
	// a line, under 1 MiB (12 batches and the one being filled), and a
	// tenth of a second of a very busy server's log.
	DefaultBuffer = 4096
	// DefaultCloseTimeout is how long Close may take to write out the
	// queue: plenty for a disk, short enough not to hold up a shutdown.
	DefaultCloseTimeout = 2 * time.Second
	// DefaultFlushInterval is how long a line may wait in the queue
	// before the writer goroutine writes it out.
	DefaultFlushInterval = 100 * time.Millisecond
)

// The names Open takes for the standard streams rather than files.
const (
	// Stderr names the standard error stream.
	Stderr = "stderr"
	// Stdout names the standard output stream.
	Stdout = "stdout"
)

const (
	// batchSize is the most bytes the writer goroutine hands the kernel in
	// one write.
	batchSize = 64 << 10
	// pipeBatch caps batches to the standard streams at PIPE_BUF, the
	// most a pipe writes without interleaving another writer's bytes,
	// so that access lines stay whole next to weir's error log.
	pipeBatch = 4096
	// closeGrace is how long Close waits past its deadline for the writer
	// goroutine, whose blocked write the deadline has just failed, to
	// count what it drops and exit.
	closeGrace = 100 * time.Millisecond
	// typicalLine is the length of a line Options.Buffer assumes in
	// sizing the batches: a combined line with a long User-Agent.
	typicalLine = 200
)

// Options tune a Writer. The zero value gives the defaults.
type Options struct {
	// Buffer is about how many lines may wait for the writer goroutine:
	// the Writer holds Buffer lines of 200 bytes in 64 KiB batches
	// (fewer longer lines, more shorter ones). A line logged while every
	// batch is full is dropped and counted. 0 means DefaultBuffer.
	Buffer int
	// CloseTimeout bounds how long Close spends writing out the lines
	// still queued. 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// ErrorLog hears of write failures: the first of a run, then how
	// many lines the run lost once writes succeed again. nil means
	// slog.Default().
	ErrorLog *slog.Logger
	// FlushInterval is the longest a line waits before the writer
	// goroutine writes it: the goroutine wakes this often, or sooner
	// when the queue is half full, and writes everything queued in as
	// few writes as it can. Waking for every line instead (a wake-up
	// and a write(2) per request) cost 9 % of a busy proxy's CPU. 0
	// means DefaultFlushInterval.
	FlushInterval time.Duration
}

// withDefaults returns o with its zero values replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.ErrorLog == nil {
		o.ErrorLog = slog.Default()
	}
	return o
}

// Writer writes access log lines to one file or standard stream. Log
// formats a line straight into the batch being filled, under a mutex held
// for that alone, and a single writer goroutine writes whole batches; Log
// never waits for the disk, so a slow or stalled one costs dropped lines
// (Dropped), never stalled requests. Any number of goroutines, services
// and Formats may share a Writer; open one per path (Writers does).
//
// (Formatting into a line buffer of its own and queueing it on a channel,
// as an earlier Writer did, cost a pool round trip, a channel send and a
// copy per line, and scattered the lines over buffers the size of the
// queue: a proxy with metrics and this log spent 1.07× the CPU per
// request of one without at 32 connections. Lines that go into 64 KiB
// batches in order stay in few cache lines.)
type Writer struct {
	path string // absolute, or Stderr or Stdout
	std  bool   // a standard stream: never reopened nor closed
	opts Options

	// mu guards the batches; Log holds it while it formats one line.
	mu     sync.Mutex
	closed bool
	cur    *batch   // the batch lines go to
	queued []*batch // full batches (and Reopen's), oldest first
	spare  []*batch // the writer goroutine's own queue slice, swapped with queued
	free   []*batch
	// maxQueued bounds queued: with cur, the Writer holds at most
	// maxQueued+1 batches of lines; more are dropped.
	maxQueued int
	// wake cuts the writer goroutine's sleep short: a batch is full, or
	// the Writer is closed.
	wake chan struct{}

	// file is the file being written. Only the writer goroutine changes
	// it; Close reads it to put a deadline on a blocked write.
	file atomic.Pointer[os.File]
	// pending is a file Reopen opened, for the writer goroutine to switch
	// to after the batch Reopen marked.
	pendingMu sync.Mutex
	pending   *os.File
	// deadline is when Close stops writing (Unix nanoseconds); 0 before.
	deadline atomic.Int64

	written, dropped atomic.Uint64
	done             chan struct{}
	closeErr         error // set by the writer goroutine before done closes

	sink sink // the writer goroutine's own state
}

// batch is a run of whole lines, written with one write (or, to a
// standard stream, in pieces of at most PIPE_BUF).
type batch struct {
	buf   []byte
	lines int
	// reopen: switch to Reopen's file once this batch is written.
	reopen bool
}

// sink is the state only the writer goroutine touches.
type sink struct {
	torn      bool // a failed write left a torn line: start the next with a newline
	failing   bool
	lost      uint64 // lines lost since the current run of failures began
	lateLines uint64 // lines dropped because Close's deadline passed
}

// newBatch returns an empty batch that takes batchSize bytes of lines
// and one more line of up to MaxLine without growing.
func newBatch() *batch { return &batch{buf: make([]byte, 0, batchSize+MaxLine)} }

// Open opens the access log at path for appending, creating it with mode
// 0644, or writes to the standard stream for the names "stderr" and
// "stdout" (write ./stderr for a file of that name). A relative path is
// made absolute now, so that Reopen finds it whatever the working
// directory becomes. It starts the Writer's goroutine; Close stops it.
func Open(path string, opts Options) (*Writer, error) {
	path, err := canonicalPath(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, opts: opts.withDefaults(), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	// Options.Buffer counts lines; at typically 200 bytes a line, that
	// many fill this many batches. All are made now, so that Log never
	// allocates.
	w.maxQueued = max(1, w.opts.Buffer*typicalLine/batchSize)
	w.cur = newBatch()
	for range w.maxQueued {
		w.free = append(w.free, newBatch())
	}
	w.queued = make([]*batch, 0, w.maxQueued+1)
	w.spare = make([]*batch, 0, w.maxQueued+1)
	switch path {
	case Stderr:
		w.std = true
		w.file.Store(os.Stderr)
	case Stdout:
		w.std = true
		w.file.Store(os.Stdout)
	default:
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		w.file.Store(f)
	}
	go w.run()
	return w, nil
}

// canonicalPath returns the name Open and Writers know path by: Stderr,
// Stdout or an absolute, clean file path.
func canonicalPath(path string) (string, error) {
	switch path {
	case "":
		return "", errors.New("access log: empty path; give a file, stderr or stdout")
	case Stderr, Stdout:
		return path, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("access log %s: %w", path, err)
	}
	return abs, nil
}

// openFile opens path for appending. O_APPEND makes every write land at
// the end of the file, even when the old and the new weir both write
// during an upgrade, or logrotate truncates it (copytruncate).
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// Path returns the path the Writer writes to: absolute, or "stderr" or
// "stdout".
func (w *Writer) Path() string { return w.path }

// Log formats r in f into the batch being filled. It never blocks on
// the disk and allocates nothing: when every batch is full (the disk is
// not keeping up), or the Writer is closed, the line is dropped and
// counted.
func (w *Writer) Log(f *Format, r *Record) {
	w.mu.Lock()
	if w.closed || len(w.cur.buf) >= batchSize && !w.rotate(false) {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	b := w.cur
	b.buf = f.Append(b.buf, r)
	b.lines++
	w.mu.Unlock()
}

// rotate queues the current batch for the writer goroutine and starts a
// free one, and reports whether it could: when every batch is queued, the
// current one stays. force (Reopen's, Close's) queues it even then; the
// batch that follows is a new one. Call with mu held.
func (w *Writer) rotate(force bool) bool {
	var next *batch
	switch n := len(w.free); {
	case n > 0:
		next = w.free[n-1]
		w.free = w.free[:n-1]
	case force:
		next = newBatch()
	default:
		return false
	}
	w.queued = append(w.queued, w.cur)
	w.cur = next
	w.signal()
	return true
}

// signal wakes the writer goroutine, unless a wake-up is already due.
func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Written returns how many lines were written: handed whole to the
// kernel.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped returns how many lines were lost: logged while every batch was
// full or after Close, failed to write, or still queued at Close's
// deadline. Once Close has returned nil, every line logged is either
// written or dropped.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Reopen opens the path again and has the writer goroutine switch to the
// new file after the lines logged so far, then close the old one: after
// logrotate renames the log, lines go to a new file at the path, none
// lost or split. Lines logged before Reopen is called are written to the
// old file, lines logged after it returns to the new one. The open
// happens here, so its error is Reopen's, and the Writer then keeps the
// old file. Reopen never waits for the writer goroutine. For stderr and
// stdout it does nothing.
func (w *Writer) Reopen() error {
	if w.std {
		return nil
	}
	f, err := openFile(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		f.Close()
		return fmt.Errorf("access log %s: %w", w.path, ErrClosed)
	}
	w.pendingMu.Lock()
	old := w.pending
	w.pending = f
	w.pendingMu.Unlock()
	if old != nil { // a Reopen the goroutine has not yet switched to
		old.Close()
	}
	w.cur.reopen = true
	w.rotate(true)
	return nil
}

// Close writes the lines still queued and closes the file (not a
// standard stream). It gives up on lines it cannot write within
// Options.CloseTimeout, counting them dropped and returning an error
// that wraps ErrCloseTimeout: a blocked write to a pipe or FIFO fails at
// that deadline. Only a write the kernel cannot interrupt (a hung
// network file system, a stalled standard stream) can keep the writer
// goroutine longer, in which case Close returns 100 ms after the
// deadline and the goroutine finishes on its own. Lines logged after
// Close are dropped.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("access log %s: %w", w.path, ErrClosed)
	}
	w.closed = true
	deadline := time.Now().Add(w.opts.CloseTimeout)
	// Stored before the file is loaded, as the goroutine stores a new file
	// before it loads the deadline: whichever comes second sees the other,
	// so the file being written always gets the deadline.
	w.deadline.Store(deadline.UnixNano())
	if w.cur.lines > 0 {
		w.rotate(true)
	}
	w.signal()
	w.mu.Unlock()
	if !w.std { // a deadline on os.Stderr would outlive us and fail the error log
		w.file.Load().SetWriteDeadline(deadline)
	}

	t := time.NewTimer(time.Until(deadline) + closeGrace)
	defer t.Stop()
	select {
	case <-w.done:
		return w.closeErr
	case <-t.C:
		return fmt.Errorf("%w: %s: a write has been blocked for over %v; its lines may be lost",
			ErrCloseTimeout, w.path, w.opts.CloseTimeout)
	}
}

// run is the writer goroutine. It sleeps for FlushInterval, or until a
// batch is full, then writes every batch queued and the one being
// filled, until Close.
func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-w.wake:
		}
		w.mu.Lock()
		if w.cur.lines > 0 && !w.closed {
			w.rotate(false) // the lines of a quiet moment go out too
		}
		q := w.queued
		w.queued, w.spare = w.spare[:0], nil
		closed := w.closed
		w.mu.Unlock()

		for _, b := range q {
			w.write(b)
			if b.reopen {
				w.switchFile()
			}
		}
		w.recycle(q)
		if closed {
			w.closeErr = w.finish()
			return
		}
	}
}

// recycle returns the written batches to the free list, and q to be the
// next spare queue slice.
func (w *Writer) recycle(q []*batch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range q {
		b.buf, b.lines, b.reopen = b.buf[:0], 0, false
		if len(w.free) < w.maxQueued { // a batch Reopen or Close added goes
			w.free = append(w.free, b)
		}
	}
	w.spare = q[:0]
}

// write writes a batch and counts its lines written or dropped. A write
// that fails part-way leaves a torn line in the file; the next write then
// starts with a newline, so that the lines after it stay whole.
func (w *Writer) write(b *batch) {
	if b.lines == 0 {
		return
	}
	if w.sink.torn {
		if _, err := w.file.Load().Write([]byte{'\n'}); err == nil {
			w.sink.torn = false
		}
	}
	var whole int
	var err error
	if w.std {
		whole, err = w.writePieces(b.buf)
	} else {
		whole, err = w.writeAll(b.buf)
	}
	lost := b.lines - whole
	w.written.Add(uint64(whole))
	w.dropped.Add(uint64(lost))
	w.report(err, lost)
}

// writeAll writes p in one write and returns how many whole lines went.
func (w *Writer) writeAll(p []byte) (int, error) {
	var n int
	var err error
	if d := w.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		err = ErrCloseTimeout
	} else {
		n, err = w.file.Load().Write(p)
	}
	if err == nil {
		return bytes.Count(p, []byte{'\n'}), nil
	}
	w.sink.torn = n > 0 && p[n-1] != '\n'
	return bytes.Count(p[:n], []byte{'\n'}), err
}

// writePieces writes p to a standard stream in pieces of whole lines of
// at most PIPE_BUF bytes (or one longer line), the most a pipe writes
// without interleaving another writer's bytes, so that access lines stay
// whole next to weir's error log.
func (w *Writer) writePieces(p []byte) (int, error) {
	whole := 0
	for len(p) > 0 {
		end := bytes.LastIndexByte(p[:min(len(p), pipeBatch)], '\n') + 1
		if end == 0 {
			end = bytes.IndexByte(p, '\n') + 1
		}
		n, err := w.writeAll(p[:end])
		whole += n
		if err != nil {
			return whole, err
		}
		p = p[end:]
	}
	return whole, nil
}

// report tells the error log of the first failure in a run, and of the
// lines the run lost once a write succeeds again, rather than of every
// failed batch. Lines lost to Close's deadline are Close's to report.
func (w *Writer) report(err error, lost int) {
	s := &w.sink
	switch {
	case errors.Is(err, ErrCloseTimeout) || errors.Is(err, os.ErrDeadlineExceeded):
		s.lateLines += uint64(lost)
	case err != nil:
		if !s.failing {
			w.opts.ErrorLog.Error("access log write failed; dropping lines until it succeeds", "path", w.path, "err", err)
		}
		s.failing = true
		s.lost += uint64(lost)
	case s.failing:
		w.opts.ErrorLog.Warn("access log written again", "path", w.path, "lines_lost", s.lost)
		s.failing, s.lost = false, 0
	}
}

// switchFile switches to the file Reopen left pending, once the batch
// Reopen marked is written to the old one, and closes the old one.
func (w *Writer) switchFile() {
	w.pendingMu.Lock()
	f := w.pending
	w.pending = nil
	w.pendingMu.Unlock()
	if f == nil {
		return
	}
	old := w.file.Swap(f)
	if d := w.deadline.Load(); d != 0 {
		f.SetWriteDeadline(time.Unix(0, d))
	}
	if err := old.Close(); err != nil {
		w.opts.ErrorLog.Error("access log: closing the file before the reopened one", "path", w.path, "err", err)
	}
}

// finish closes the files once Close's lines are written.
func (w *Writer) finish() error {
	w.pendingMu.Lock()
	if w.pending != nil {
		w.pending.Close()
		w.pending = nil
	}
	w.pendingMu.Unlock()
	var errs []error
	if n := w.sink.lateLines; n > 0 {
		errs = append(errs, fmt.Errorf("%w: %s: %d lines dropped, not written within %v",
			ErrCloseTimeout, w.path, n, w.opts.CloseTimeout))
	}
	if !w.std {
		if err := w.file.Load().Close(); err != nil {
			errs = append(errs, fmt.Errorf("access log: %w", err))
		}
	}
	return errors.Join(errs...)
}
