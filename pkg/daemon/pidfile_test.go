package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestWritePIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weir.pid")
	for _, pid := range []int{1234, 98765} { // the second replaces the first
		if err := WritePIDFile(path, pid); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil || string(data) != strconv.Itoa(pid)+"\n" {
			t.Fatalf("pid file holds %q, %v; want %q", data, err, strconv.Itoa(pid)+"\n")
		}
	}
	if info, err := os.Stat(path); runtime.GOOS != "windows" && (err != nil || info.Mode().Perm() != 0o644) {
		t.Errorf("pid file mode = %v, %v; want 0644", info.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the pid file: %v", len(entries), entries)
	}
}

func TestWritePIDFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		pid     int
		wantErr error
	}{
		{"missing directory", filepath.Join(dir, "no", "weir.pid"), 1, fs.ErrNotExist},
		{"zero pid", filepath.Join(dir, "weir.pid"), 0, nil},
		{"negative pid", filepath.Join(dir, "weir.pid"), -7, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WritePIDFile(tt.path, tt.pid)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("WritePIDFile(%s, %d) = %v; want an error wrapping %v", tt.path, tt.pid, err, tt.wantErr)
			}
			if _, err := os.Stat(tt.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed write left %s behind", tt.path)
			}
		})
	}
}

func TestReadPIDFile(t *testing.T) {
	tests := []struct {
		content string
		want    int
		wantErr error
	}{
		{"4321\n", 4321, nil},
		{" 77 \r\n", 77, nil},
		{"4321", 4321, nil},
		{"", 0, ErrBadPIDFile},
		{"weir\n", 0, ErrBadPIDFile},
		{"0\n", 0, ErrBadPIDFile},
		{"-12\n", 0, ErrBadPIDFile},
		{"12 34\n", 0, ErrBadPIDFile},
		{"99999999999999999999\n", 0, ErrBadPIDFile},
		{strings.Repeat("1", maxPIDFileSize+1), 0, ErrBadPIDFile},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "weir.pid")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPIDFile(path)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), path)) {
			t.Errorf("ReadPIDFile(%q) = %d, %v; want %d, %v, naming the file", tt.content, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := ReadPIDFile(filepath.Join(t.TempDir(), "absent.pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPIDFile(absent) = %v, want fs.ErrNotExist", err)
	}
}

// TestRemovePIDFile checks that a process removes its own pid file only,
// leaving one a successor rewrote.
func TestRemovePIDFile(t *testing.T) {
	const self = 1000
	tests := []struct {
		name       string
		content    string // "" for no file
		wantErr    error
		wantRemain bool
	}{
		{name: "ours", content: "1000\n"},
		{name: "a successor's", content: "2000\n", wantRemain: true},
		{name: "already gone"},
		{name: "malformed", content: "garbage\n", wantErr: ErrBadPIDFile, wantRemain: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "weir.pid")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := RemovePIDFile(path, self)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("RemovePIDFile = %v, want %v", err, tt.wantErr)
			}
			_, statErr := os.Stat(path)
			if remains := statErr == nil; remains != tt.wantRemain {
				t.Errorf("pid file remains = %v, want %v", remains, tt.wantRemain)
			}
		})
	}
}

// TestPIDFileReplacedAtomically rewrites the pid file repeatedly while a
// reader reads it: every read must see one complete pid.
func TestPIDFileReplacedAtomically(t *testing.T) {
	const writes = 300
	const maxReads = 200_000
	path := filepath.Join(t.TempDir(), "weir.pid")
	pids := []int{7, 1234567890} // lengths differ, so a torn file would show
	if err := WritePIDFile(path, pids[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range writes {
			if err := WritePIDFile(path, pids[i%2]); err != nil {
				t.Error(err)
				return
			}
		}
	})
reading:
	for reads := range maxReads {
		select {
		case <-done:
			break reading
		default:
		}
		got, err := ReadPIDFile(path)
		if err != nil || (got != pids[0] && got != pids[1]) {
			t.Errorf("read %d saw %d, %v; want %d or %d", reads, got, err, pids[0], pids[1])
			break
		}
	}
	wg.Wait()
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
