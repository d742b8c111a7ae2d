package accesslog

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWritersSharesOneWriterPerPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ws := NewWriters(Options{})
	a, err := ws.Get("access.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, same := range []string{filepath.Join(dir, "access.log"), "./access.log", "x/../access.log"} {
		if b, err := ws.Get(same); err != nil || b != a {
			t.Errorf("Get(%q) = %p, %v; want the Writer of access.log, %p", same, b, err, a)
		}
	}
	other, err := ws.Get("other.log")
	if err != nil || other == a {
		t.Fatalf("Get(other.log) = %p, %v; want a Writer of its own", other, err)
	}

	// Two services, two formats, one file.
	a.Log(mustParse(t, "$service $status"), sampleRecord())
	a.Log(mustParse(t, "$service $request_id"), sampleRecord())
	waitFor(t, "both lines are written", func() bool { return a.Written() == 2 })

	for _, name := range []string{"access.log", "other.log"} {
		if err := os.Rename(name, name+".1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.ReopenAll(); err != nil {
		t.Fatal(err)
	}
	a.Log(mustParse(t, "$service after"), sampleRecord())
	if err := ws.CloseAll(); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, "access.log.1"); !slices.Equal(got, []string{"shop 200", "shop 7f3a9c"}) {
		t.Errorf("access.log.1: %q", got)
	}
	if got := readLines(t, "access.log"); !slices.Equal(got, []string{"shop after"}) {
		t.Errorf("access.log: %q", got)
	}
	if got := readLines(t, "other.log"); got != nil {
		t.Errorf("other.log: %q, want a new empty file", got)
	}

	if _, err := ws.Get("access.log"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after CloseAll: %v, want ErrClosed", err)
	}
	if err := ws.CloseAll(); err != nil {
		t.Errorf("second CloseAll: %v", err)
	}
}

func TestWritersReportsEveryFailure(t *testing.T) {
	dir := t.TempDir()
	ws := NewWriters(Options{})
	if _, err := ws.Get(""); err == nil {
		t.Error("Get(\"\") succeeded")
	}
	var paths []string
	for _, sub := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Join(dir, sub, "access.log"))
		if _, err := ws.Get(paths[len(paths)-1]); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, sub), filepath.Join(dir, sub+".old")); err != nil {
			t.Fatal(err)
		}
	}
	err := ws.ReopenAll()
	for _, p := range paths {
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
			t.Errorf("ReopenAll: %v; want an error naming %s", err, p)
		}
	}
	if err := ws.CloseAll(); err != nil {
		t.Fatal(err)
	}
}
