package accesslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// openTemp opens a Writer on a new file in a temporary directory.
func openTemp(t *testing.T, opts Options) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w, path
}

// logNumbered logs the requests numbered from first to last, each with
// its number as request id, through the template "$request_id".
func logNumbered(w *Writer, first, last int) {
	f, _ := ParseFormat("$request_id")
	r := sampleRecord()
	var id []byte
	for i := first; i <= last; i++ {
		id = strconv.AppendInt(id[:0], int64(i), 10)
		r.RequestID = id
		w.Log(f, r)
	}
}

// numbered returns the numbers first to last as logNumbered writes them.
func numbered(first, last int) []string {
	var s []string
	for i := first; i <= last; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

func TestWriterWritesEveryLineInOrder(t *testing.T) {
	w, path := openTemp(t, Options{})
	logNumbered(w, 1, 1000)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); !slices.Equal(got, numbered(1, 1000)) {
		t.Errorf("file holds %d lines, want 1..1000 in order", len(got))
	}
	if w.Written() != 1000 || w.Dropped() != 0 {
		t.Errorf("Written %d, Dropped %d; want 1000 and 0", w.Written(), w.Dropped())
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&^0o644 != 0 {
		t.Errorf("mode %v, want 0644 at most (umask)", perm)
	}
}

func TestWriterAppendsToAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logNumbered(w, 1, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); !slices.Equal(got, numbered(0, 3)) {
		t.Errorf("got %q", got)
	}
}

// TestWriterFlushesWhenIdle checks that a line reaches the file without
// Close or more traffic: the writer flushes whenever its queue is empty.
func TestWriterFlushesWhenIdle(t *testing.T) {
	w, path := openTemp(t, Options{})
	defer w.Close()
	logNumbered(w, 7, 7)
	waitFor(t, "the line is in the file", func() bool {
		b, _ := os.ReadFile(path)
		return string(b) == "7\n"
	})
}

// TestConcurrentLoggers has goroutines log through two formats at once
// and checks that every line arrives whole, once.
func TestConcurrentLoggers(t *testing.T) {
	const loggers, each = 16, 2000
	w, path := openTemp(t, Options{Buffer: loggers * each})
	combined, jsonFormat := mustParse(t, "combined"), mustParse(t, "json")
	var wg sync.WaitGroup
	for g := range loggers {
		wg.Go(func() {
			r := sampleRecord()
			for i := range each {
				r.UserAgent = fmt.Appendf(r.UserAgent[:0], "logger-%d-%d", g, i)
				if i%2 == 0 {
					w.Log(combined, r)
				} else {
					w.Log(jsonFormat, r)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != loggers*each || w.Dropped() != 0 {
		t.Fatalf("Written %d, Dropped %d; want %d and 0", w.Written(), w.Dropped(), loggers*each)
	}
	combinedLine := regexp.MustCompile(`^192\.0\.2\.10 - - \[[^]]+\] "GET /cart\?item=42 HTTP/1\.1" 200 5120 "https://shop\.example/" "(logger-\d+-\d+)"$`)
	seen := make(map[string]bool)
	for _, line := range readLines(t, path) {
		var ua string
		if strings.HasPrefix(line, "{") {
			var v struct {
				UserAgent string `json:"user_agent"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("a broken JSON line: %v: %q", err, line)
			}
			ua = v.UserAgent
		} else if m := combinedLine.FindStringSubmatch(line); m != nil {
			ua = m[1]
		} else {
			t.Fatalf("a broken line: %q", line)
		}
		if seen[ua] {
			t.Fatalf("%s written twice", ua)
		}
		seen[ua] = true
	}
	if len(seen) != loggers*each {
		t.Errorf("%d distinct lines, want %d", len(seen), loggers*each)
	}
}

func TestReopenAfterRename(t *testing.T) {
	w, path := openTemp(t, Options{})
	logNumbered(w, 1, 150) // queued, perhaps not yet written, at the rename
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil { // what logrotate does
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	logNumbered(w, 151, 300)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, rotated); !slices.Equal(got, numbered(1, 150)) {
		t.Errorf("rotated file: %d lines, want 1..150", len(got))
	}
	if got := readLines(t, path); !slices.Equal(got, numbered(151, 300)) {
		t.Errorf("new file: %d lines, want 151..300", len(got))
	}
}

// TestReopenUnderLoad rotates the file five times while goroutines log,
// and finds every line written, whole, in exactly one of the files. With
// a small queue lines are dropped, and Reopen finds the queue full.
func TestReopenUnderLoad(t *testing.T) {
	const loggers, each, rotations = 8, 5000, 5
	for _, buffer := range []int{loggers * each, 16} {
		t.Run(fmt.Sprintf("buffer %d", buffer), func(t *testing.T) {
			w, path := openTemp(t, Options{Buffer: buffer})
			var wg sync.WaitGroup
			for g := range loggers {
				wg.Go(func() { logNumbered(w, g*each, (g+1)*each-1) })
			}
			for i := 1; i <= rotations; i++ {
				if err := os.Rename(path, fmt.Sprintf("%s.%d", path, i)); err != nil {
					t.Fatal(err)
				}
				if err := w.Reopen(); err != nil {
					t.Fatal(err)
				}
				runtime.Gosched()
			}
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Written()+w.Dropped() != loggers*each {
				t.Fatalf("Written %d + Dropped %d, want %d", w.Written(), w.Dropped(), loggers*each)
			}
			seen := make(map[int]bool)
			for i := 0; i <= rotations; i++ {
				name := path
				if i > 0 {
					name = fmt.Sprintf("%s.%d", path, i)
				}
				for _, line := range readLines(t, name) {
					n, err := strconv.Atoi(line)
					if err != nil || n < 0 || n >= loggers*each || seen[n] {
						t.Fatalf("%s: a broken, stray or repeated line %q", name, line)
					}
					seen[n] = true
				}
			}
			if len(seen) != int(w.Written()) {
				t.Errorf("%d lines in the files, %d written", len(seen), w.Written())
			}
			t.Logf("%d written, %d dropped", w.Written(), w.Dropped())
		})
	}
}

func TestReopenFailureKeepsTheOldFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := Open(filepath.Join(dir, "access.log"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	moved := dir + ".old"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	err = w.Reopen()
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "access.log")) {
		t.Errorf("Reopen with its directory gone: %v; want an error naming the path", err)
	}
	logNumbered(w, 1, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, filepath.Join(moved, "access.log")); !slices.Equal(got, numbered(1, 3)) {
		t.Errorf("old file: %q", got)
	}
}

func TestClosedWriter(t *testing.T) {
	w, path := openTemp(t, Options{})
	logNumbered(w, 1, 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	logNumbered(w, 3, 5)
	if w.Written() != 2 || w.Dropped() != 3 {
		t.Errorf("Written %d, Dropped %d; want 2 and 3", w.Written(), w.Dropped())
	}
	if got := readLines(t, path); !slices.Equal(got, numbered(1, 2)) {
		t.Errorf("got %q", got)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if err := w.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close: %v, want ErrClosed", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		path string
		want string
	}{
		{"", "empty path"},
		{filepath.Join(dir, "missing", "access.log"), filepath.Join(dir, "missing", "access.log") + ": no such file or directory"},
		{dir, "is a directory"},
	}
	for _, tt := range tests {
		w, err := Open(tt.path, Options{})
		if err == nil {
			w.Close()
			t.Errorf("Open(%q) succeeded", tt.path)
		} else if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q): %q lacks %q", tt.path, err, tt.want)
		}
	}
}

// TestStandardStreamsStayOpen checks that Close leaves stdout and stderr
// to the rest of the program.
func TestStandardStreamsStayOpen(t *testing.T) {
	for _, name := range []string{Stdout, Stderr} {
		w, err := Open(name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if w.Path() != name {
			t.Errorf("Path() = %q, want %q", w.Path(), name)
		}
		if err := w.Reopen(); err != nil {
			t.Errorf("Reopen %s: %v", name, err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close %s: %v", name, err)
		}
	}
	for _, f := range []*os.File{os.Stdout, os.Stderr} {
		if _, err := f.Stat(); err != nil {
			t.Errorf("%s after Close: %v", f.Name(), err)
		}
	}
}

func TestRelativePathIsMadeAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	w, err := Open("access.log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if want := filepath.Join(dir, "access.log"); w.Path() != want {
		t.Errorf("Path() = %q, want %q", w.Path(), want)
	}
}

// TestWriteFailuresAreCountedAndReportedOnce writes to /dev/full, where
// every write fails: lines are dropped and the error log hears once.
func TestWriteFailuresAreCountedAndReportedOnce(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	var h countingHandler
	w, err := Open("/dev/full", Options{ErrorLog: slog.New(&h)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		logNumbered(w, i, i)
		waitFor(t, "the line is dropped", func() bool { return w.Dropped() == uint64(i+1) })
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != 0 || w.Dropped() != 50 {
		t.Errorf("Written %d, Dropped %d; want 0 and 50", w.Written(), w.Dropped())
	}
	if n := h.n.Load(); n != 1 {
		t.Errorf("%d error log records, want 1", n)
	}
}

// countingHandler is a slog.Handler that counts records.
type countingHandler struct{ n atomic.Int32 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h *countingHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h *countingHandler) WithGroup(string) slog.Handler             { return h }

func TestLogAllocatesNothing(t *testing.T) {
	// AllocsPerRun runs on one processor, where the writer goroutine gets
	// no turn during the 1000 calls: the batches must already be there.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w, _ := openTemp(t, Options{Buffer: 4096})
	defer w.Close()
	var logged uint64
	for _, s := range []string{"combined", "json", "$time_iso $client $request $status $duration"} {
		f := mustParse(t, s)
		r := sampleRecord()
		for range 1100 {
			w.Log(f, r)
		}
		logged += 1100
		waitFor(t, "every line is written", func() bool { return w.Written()+w.Dropped() == logged })
		if n := testing.AllocsPerRun(1000, func() { w.Log(f, r) }); n != 0 {
			t.Errorf("%.20s: %v allocations per Log, want 0", s, n)
		}
		logged += 1001
	}
}
