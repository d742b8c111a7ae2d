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
	// DefaultBuffer is the lines a Writer queues: at a typical 200 bytes
	// a line, under 1 MiB, and a second of a busy server's log.
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
	// lineBuffer is the capacity a fresh line buffer starts with; it grows
	// to the longest line it has held and keeps that size in the pool.
	lineBuffer = 512
)

// Options tune a Writer. The zero value gives the defaults.
type Options struct {
	// Buffer is how many formatted lines may wait for the writer
	// goroutine. A line logged while it is full is dropped and counted.
	// 0 means DefaultBuffer.
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
// formats a line on the caller's goroutine and queues it for a single
// writer goroutine, which batches lines into large writes; it never
// blocks, so a slow or stalled disk costs dropped lines (Dropped), never
// stalled requests. Any number of goroutines, services and Formats may
// share a Writer; open one per path (Writers does).
type Writer struct {
	path string // absolute, or Stderr or Stdout
	std  bool   // a standard stream: never reopened nor closed
	opts Options

	// mu orders Log's sends before Close's close of queue: Log holds it
	// shared while it sends, Close exclusively while it closes.
	mu     sync.RWMutex
	closed bool
	queue  chan *[]byte
	// wake cuts the writer goroutine's sleep short: the queue is half
	// full, or closed.
	wake   chan struct{}
	wakeAt int

	lines sync.Pool // of *[]byte, recycled by the writer goroutine

	// file is the file being written. Only the writer goroutine changes
	// it; Close reads it to put a deadline on a blocked write.
	file atomic.Pointer[os.File]
	// pending is a file Reopen opened, waiting for the writer goroutine
	// to switch to it between two lines. Reopen queues switchMark behind
	// the lines already queued, or, when the queue is full, signals
	// reopened.
	pendingMu  sync.Mutex
	pending    *os.File
	switchMark *[]byte
	reopened   chan struct{}
	// deadline is when Close stops writing (Unix nanoseconds); 0 before.
	deadline atomic.Int64

	written, dropped atomic.Uint64
	done             chan struct{}
	closeErr         error // set by the writer goroutine before done closes

	sink sink // the writer goroutine's own state
}

// sink is the state only the writer goroutine touches.
type sink struct {
	batch     []byte
	limit     int // bytes at which the batch is written
	lines     int // whole lines in batch
	lead      int // bytes before the first line (a newline ending a torn one)
	failing   bool
	lost      uint64 // lines lost since the current run of failures began
	lateLines uint64 // lines dropped because Close's deadline passed
}

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
	w := &Writer{
		path:       path,
		opts:       opts.withDefaults(),
		reopened:   make(chan struct{}, 1),
		switchMark: new([]byte),
		done:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
	w.queue = make(chan *[]byte, w.opts.Buffer)
	w.wakeAt = max(1, w.opts.Buffer/2)
	w.lines.New = func() any {
		b := make([]byte, 0, lineBuffer)
		return &b
	}
	w.sink = sink{batch: make([]byte, 0, batchSize), limit: batchSize}
	switch path {
	case Stderr:
		w.std, w.sink.limit = true, pipeBatch
		w.file.Store(os.Stderr)
	case Stdout:
		w.std, w.sink.limit = true, pipeBatch
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

// Log formats r in f and queues the line. It never blocks and, once the
// Writer has warmed up, allocates nothing: when the queue is full, or
// the Writer is closed, the line is dropped and counted.
func (w *Writer) Log(f *Format, r *Record) {
	b := w.lines.Get().(*[]byte)
	*b = f.Append((*b)[:0], r)
	w.mu.RLock()
	if !w.closed {
		select {
		case w.queue <- b:
			w.mu.RUnlock()
			if len(w.queue) >= w.wakeAt {
				w.signal()
			}
			return
		default:
		}
	}
	w.mu.RUnlock()
	w.lines.Put(b)
	w.dropped.Add(1)
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

// Dropped returns how many lines were lost: logged while the queue was
// full or after Close, failed to write, or still queued at Close's
// deadline. Once Close has returned nil, every line logged is either
// written or dropped.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Reopen opens the path again and has the writer goroutine switch to the
// new file between two lines, then close the old one: after logrotate
// renames the log, lines go to a new file at the path, none lost or
// split. Lines logged before Reopen is called are written to the old
// file, lines logged after it returns to the new one; only when the
// queue is full (the disk is not keeping up, and lines are being
// dropped) may lines queued before Reopen go to the new file too. The
// open happens here, so its error is Reopen's, and the Writer then keeps
// the old file. Reopen never waits for the writer goroutine. For stderr
// and stdout it does nothing.
func (w *Writer) Reopen() error {
	if w.std {
		return nil
	}
	f, err := openFile(w.path)
	if err != nil {
		return err
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
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
	select {
	case w.queue <- w.switchMark:
		return nil
	default:
	}
	select {
	case w.reopened <- struct{}{}:
	default: // a signal is already waiting; it will find this file
	}
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
	close(w.queue)
	w.mu.Unlock()
	w.signal()
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

// run is the writer goroutine. It sleeps for FlushInterval, or until
// the queue is half full, then writes every line queued, in batches, and
// switches files for Reopen, until Close closes the queue.
func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-w.wake:
		case <-w.reopened:
		}
		if !w.drain() {
			w.closeErr = w.finish()
			return
		}
		w.flush()
		// A Reopen that found the queue full had no place in it for its
		// mark: switch now, after the lines queued before it.
		select {
		case <-w.reopened:
			w.switchFile()
		default:
		}
	}
}

// drain batches every line queued now, switching files at Reopen's
// marks, and reports false once Close has closed the queue and it is
// empty. This goroutine alone receives, so the queue only grows while
// it drains: it stops at the length it found, lest loggers faster than
// the disk keep it here for ever.
func (w *Writer) drain() bool {
	for n := len(w.queue); n > 0; n-- {
		line, ok := <-w.queue
		if !ok {
			return false
		}
		w.takeLine(line)
	}
	select {
	case line, ok := <-w.queue:
		if !ok {
			return false
		}
		w.takeLine(line)
	default:
	}
	return true
}

// takeLine batches one line, or switches files at a mark.
func (w *Writer) takeLine(line *[]byte) {
	if line == w.switchMark {
		w.switchFile()
		return
	}
	w.add(line)
}

// add copies a line into the batch, writing the batch first if the line
// would take it past its limit, and recycles the line's buffer.
func (w *Writer) add(line *[]byte) {
	s := &w.sink
	if len(s.batch) > 0 && len(s.batch)+len(*line) > s.limit {
		w.flush()
	}
	s.batch = append(s.batch, *line...)
	s.lines++
	w.lines.Put(line)
}

// flush writes the batch and counts its lines written or dropped. A
// write that fails part-way leaves a torn line in the file; the next
// batch then starts with a newline, so that the lines after it stay
// whole.
func (w *Writer) flush() {
	s := &w.sink
	if len(s.batch) == 0 {
		return
	}
	var n int
	var err error
	if d := w.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		err = ErrCloseTimeout
	} else {
		n, err = w.file.Load().Write(s.batch)
	}
	whole := s.lines
	if err != nil {
		whole = 0
		if n > s.lead {
			whole = bytes.Count(s.batch[s.lead:n], []byte{'\n'})
		}
	}
	lost := s.lines - whole
	w.written.Add(uint64(whole))
	w.dropped.Add(uint64(lost))
	w.report(err, lost)
	torn := err != nil && n > 0 && s.batch[n-1] != '\n'
	s.batch, s.lines, s.lead = s.batch[:0], 0, 0
	if torn {
		s.batch, s.lead = append(s.batch, '\n'), 1
	}
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

// switchFile switches to the file Reopen left pending, after writing the
// batch to the old one, and closes the old one.
func (w *Writer) switchFile() {
	w.pendingMu.Lock()
	f := w.pending
	w.pending = nil
	w.pendingMu.Unlock()
	if f == nil {
		return
	}
	w.flush()
	old := w.file.Swap(f)
	if d := w.deadline.Load(); d != 0 {
		f.SetWriteDeadline(time.Unix(0, d))
	}
	if err := old.Close(); err != nil {
		w.opts.ErrorLog.Error("access log: closing the file before the reopened one", "path", w.path, "err", err)
	}
}

// finish writes what is left once the queue is closed and drained, then
// closes the files.
func (w *Writer) finish() error {
	w.flush()
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
