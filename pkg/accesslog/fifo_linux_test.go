package accesslog

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestStalledFIFO logs into a FIFO that nobody reads: once the pipe is
// full the writer goroutine blocks for good. Log must still return at
// once, dropping lines, and Close must give up at its timeout with every
// line counted written or dropped.
func TestStalledFIFO(t *testing.T) {
	const lines = 200_000
	const closeTimeout = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader must exist for the write end to open; this one never reads.
	reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	opts := quietOptions()
	opts.Buffer, opts.CloseTimeout = 1024, closeTimeout
	w, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}

	f, r := mustParse(t, "combined"), sampleRecord()
	var slowest time.Duration
	start := time.Now()
	for range lines {
		t0 := time.Now()
		w.Log(f, r)
		slowest = max(slowest, time.Since(t0))
	}
	loop := time.Since(start)
	t.Logf("%d lines logged in %v (%v per line), the slowest in %v; %d written, %d dropped",
		lines, loop, loop/lines, slowest, w.Written(), w.Dropped())
	// Bounds a blocked Log would blow through (it would never return),
	// generous enough for the race detector on a loaded machine.
	if loop > 20*time.Second || slowest > time.Second {
		t.Errorf("Log blocked: %v for the loop, %v for the slowest call", loop, slowest)
	}
	if w.Dropped() == 0 {
		t.Error("nothing dropped, though nothing reads the FIFO")
	}

	start = time.Now()
	err = w.Close()
	took := time.Since(start)
	if took > closeTimeout+closeGrace+time.Second {
		t.Errorf("Close took %v, with a timeout of %v", took, closeTimeout)
	}
	if !errors.Is(err, ErrCloseTimeout) {
		t.Errorf("Close: %v, want ErrCloseTimeout", err)
	}
	t.Logf("Close took %v: %v", took, err)
	if w.Written() == 0 || w.Written()+w.Dropped() != lines {
		t.Errorf("Written %d + Dropped %d, want some written and %d in all", w.Written(), w.Dropped(), lines)
	}
}
