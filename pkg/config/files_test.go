package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadTimeout bounds every Load in these tests: a configuration file that
// is a FIFO with no writer must be refused at once, not waited on.
const loadTimeout = 5 * time.Second

// loadWithin runs Load(path) and fails the test if it has not returned
// within loadTimeout.
func loadWithin(t *testing.T, path string) (*Config, error) {
	t.Helper()
	type result struct {
		cfg *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := Load(path)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(loadTimeout):
		t.Fatalf("Load(%s) still blocked after %v", path, loadTimeout)
		return nil, nil
	}
}

// mkfifo makes a FIFO in a fresh directory and, when the test ends,
// opens it for writing once so that a reader blocked on it (a regression)
// is let go.
func mkfifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	return path
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadRefusesWhatIsNotARegularFile points Load at a device, a FIFO
// with no writer, a directory, a socket and a file one byte over the cap:
// each must be refused at once, with an error saying what the file is.
// Before the fix Load read /dev/zero until the memory ran out and waited
// forever on the FIFO.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	tests := []struct {
		name string
		path func(t *testing.T) string
		is   error
		want []string // substrings of the message
	}{
		{"device", func(*testing.T) string { return "/dev/zero" }, ErrNotRegularFile,
			[]string{`"/dev/zero" is a character device, not a regular file`, "give the path of a regular file"}},
		{"symlink to a device", func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "weir.yaml")
			if err := os.Symlink("/dev/zero", link); err != nil {
				t.Fatal(err)
			}
			return link
		}, ErrNotRegularFile, []string{"is a character device, not a regular file"}},
		{"fifo without a writer", mkfifo, ErrNotRegularFile,
			[]string{"is a FIFO (named pipe), not a regular file"}},
		{"directory", func(t *testing.T) string { return t.TempDir() }, ErrNotRegularFile,
			[]string{"is a directory, not a regular file", "give the path of the configuration file, not of its directory"}},
		{"socket", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "s")
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return path
		}, ErrNotRegularFile, []string{"is a Unix socket, not a regular file"}},
		{"one byte over the cap", func(t *testing.T) string {
			path := writeFile(t, t.TempDir(), "big.yaml", minimal)
			if err := os.Truncate(path, MaxFileSize+1); err != nil { // sparse
				t.Fatal(err)
			}
			return path
		}, ErrFileTooLarge, []string{
			"is " + strconv.Itoa(MaxFileSize+1) + " bytes",
			"more than the " + strconv.Itoa(MaxFileSize) + " bytes (16 MiB)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadWithin(t, tt.path(t))
			if cfg != nil || err == nil {
				t.Fatalf("Load = %v, %v; want an error", cfg, err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			var errs *Errors
			if errors.As(err, &errs) {
				t.Errorf("a file weir will not read is not a configuration problem, got *Errors %v", errs)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestLoadFollowsSymlinks checks that a symlink to a regular file is read
// like the file itself.
func TestLoadFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := writeFile(t, dir, "real.yaml", minimal)
	link := filepath.Join(dir, "weir.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadWithin(t, link)
	if err != nil {
		t.Fatalf("Load through a symlink: %v", err)
	}
	if len(cfg.Services) != 1 || cfg.Services[0].Name != "a" {
		t.Errorf("Load through a symlink gave %+v", cfg.Services)
	}
}

// TestReadFileAtTheCap reads a file of exactly MaxFileSize bytes, which
// is allowed.
func TestReadFileAtTheCap(t *testing.T) {
	path := writeFile(t, t.TempDir(), "big.pem", "")
	if err := os.Truncate(path, MaxFileSize); err != nil {
		t.Fatal(err)
	}
	data, err := ReadFile(path, "CA bundle")
	if err != nil || len(data) != MaxFileSize {
		t.Fatalf("readFile of %d bytes = %d bytes, %v; want all of it", MaxFileSize, len(data), err)
	}
}

// endless is a reader that never ends, like a file that grows as fast as
// it is read.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestReadCappedStopsAtTheCap checks that a file is read to one byte past
// the cap at most, so that a file that grows while it is read (after its
// size was checked) is refused too.
func TestReadCappedStopsAtTheCap(t *testing.T) {
	data, err := readCapped(endless{}, "growing.yaml", "configuration")
	if !errors.Is(err, ErrFileTooLarge) || data != nil {
		t.Fatalf("readCapped(endless) = %d bytes, %v; want ErrFileTooLarge", len(data), err)
	}
	if !strings.Contains(err.Error(), "more than "+strconv.Itoa(MaxFileSize)+" bytes") {
		t.Errorf("error %q does not name the cap", err)
	}
}

// TestNamedFilesMustBeRegular points the files a configuration names (a
// CA bundle, a certificate, a private key) at a device, a FIFO and a
// directory: each is reported at its key, at once.
func TestNamedFilesMustBeRegular(t *testing.T) {
	tlsDir, err := filepath.Abs(filepath.Join("testdata", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{
		"ca":   filepath.Join(tlsDir, "server.crt"),
		"cert": filepath.Join(tlsDir, "server.crt"),
		"key":  filepath.Join(tlsDir, "server.key"),
	}
	bad := []struct {
		name string
		path func(t *testing.T) string
		want string
	}{
		{"device", func(*testing.T) string { return "/dev/zero" }, "is a character device, not a regular file"},
		{"fifo", mkfifo, "is a FIFO (named pipe), not a regular file"},
		{"directory", func(t *testing.T) string { return t.TempDir() }, "is a directory, not a regular file"},
	}
	keys := []struct {
		key, path string
		line, col int
	}{
		{"ca", "ca_file", 2, 10},
		{"cert", "services[0].listen[0].tls.certs[0].cert", 8, 30},
		{"key", "services[0].listen[0].tls.certs[0].key", 9, 29},
	}
	for _, k := range keys {
		for _, b := range bad {
			t.Run(k.key+"/"+b.name, func(t *testing.T) {
				files := map[string]string{"ca": good["ca"], "cert": good["cert"], "key": good["key"]}
				files[k.key] = b.path(t)
				yml := "version: 1\n" +
					"ca_file: " + strconv.Quote(files["ca"]) + "\n" +
					"services:\n" +
					"  - name: a\n" +
					"    kind: respond\n" +
					"    listen:\n" +
					"      - addr: 127.0.0.1:8443\n" +
					"        tls: {certs: [{cert: " + strconv.Quote(files["cert"]) + ",\n" +
					"                       key: " + strconv.Quote(files["key"]) + "}]}\n"
				conf := writeFile(t, t.TempDir(), "weir.yaml", yml)
				_, err := loadWithin(t, conf)
				var errs *Errors
				if !errors.As(err, &errs) || len(*errs) != 1 {
					t.Fatalf("want one configuration error, got %v", err)
				}
				e := (*errs)[0]
				if e.Line != k.line || e.Col != k.col || !strings.HasPrefix(e.Msg, k.path+": ") || !strings.Contains(e.Msg, b.want) {
					t.Errorf("got %v\nwant an error at %d:%d, %s: ... %s", e, k.line, k.col, k.path, b.want)
				}
			})
		}
	}
}
