package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeSystemd listens where NOTIFY_SOCKET points, as systemd does.
type fakeSystemd struct {
	t    *testing.T
	addr string
	conn *net.UnixConn
}

// listenSystemd binds a datagram socket at addr (a path, or an @abstract
// name) and points NOTIFY_SOCKET at it for the rest of t.
func listenSystemd(t *testing.T, addr string) *fakeSystemd {
	t.Helper()
	s := &fakeSystemd{t: t, addr: addr}
	s.listen()
	t.Cleanup(func() { s.conn.Close() })
	t.Setenv(NotifySocketEnv, addr)
	return s
}

func (s *fakeSystemd) listen() {
	s.t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.addr, Net: "unixgram"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.conn = conn
}

// next returns the next message, waiting at most 5 s.
func (s *fakeSystemd) next() string {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := s.conn.Read(buf)
	if err != nil {
		s.t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// notifyAddrs are the two kinds of NOTIFY_SOCKET.
func notifyAddrs(t *testing.T) map[string]string {
	return map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": fmt.Sprintf("@weir-daemon-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	}
}

// TestSystemdNotifications sends every state change and checks the
// datagrams systemd would receive, on a socket path and an abstract one.
func TestSystemdNotifications(t *testing.T) {
	for kind, addr := range notifyAddrs(t) {
		t.Run(kind, func(t *testing.T) {
			sd := listenSystemd(t, addr)
			n, err := FromEnv()
			if err != nil || n == nil {
				t.Fatalf("FromEnv = %v, %v", n, err)
			}
			defer n.Close()
			if n.Detached() {
				t.Error("a systemd service reports Detached")
			}
			tests := []struct {
				name string
				call func() error
				want string
			}{
				{"Ready", n.Ready, "READY=1"},
				{"Status", func() error { return n.Status("serving\n3 services") }, "STATUS=serving; 3 services"},
				{"Stopping", n.Stopping, "STOPPING=1"},
				{"HandOver", func() error { return n.HandOver(4242) }, "MAINPID=4242\nREADY=1"},
				{"Fail", func() error { return n.Fail(errors.New("a.yaml:3:1: bad\na.yaml:4:1: worse")) },
					"STATUS=failed to start: a.yaml:3:1: bad; a.yaml:4:1: worse"},
			}
			for _, tt := range tests {
				if err := tt.call(); err != nil {
					t.Errorf("%s: %v", tt.name, err)
					continue
				}
				if got := sd.next(); got != tt.want {
					t.Errorf("%s sent %q, want %q", tt.name, got, tt.want)
				}
			}
		})
	}
}

// TestSystemdReloading checks RELOADING=1 and that MONOTONIC_USEC is the
// monotonic clock's reading at the time, as systemd compares it.
func TestSystemdReloading(t *testing.T) {
	sd := listenSystemd(t, filepath.Join(t.TempDir(), "notify"))
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	before, _ := monotonicMicros()
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicMicros()
	got := sd.next()
	rest, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
	usec, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || usec < before || usec > after {
		t.Errorf("Reloading sent %q; want RELOADING=1 and MONOTONIC_USEC in [%d, %d]", got, before, after)
	}
}

// TestSystemdSocketRecreated: after systemd re-executes itself its
// socket is new, and the next notification must still arrive.
func TestSystemdSocketRecreated(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify")
	sd := listenSystemd(t, addr)
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sd.conn.Close()
	os.Remove(addr)
	sd.listen()
	if err := n.Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := sd.next(); got != "STOPPING=1" {
		t.Errorf("got %q after the socket was re-created, want STOPPING=1", got)
	}
}

func TestSystemdBadSocket(t *testing.T) {
	tests := map[string]string{
		"relative path": "run/notify",
		"no listener":   filepath.Join(t.TempDir(), "absent"),
		"vsock":         "vsock:2:1234",
	}
	for name, addr := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv(NotifySocketEnv, addr)
			n, err := FromEnv()
			if !errors.Is(err, ErrBadEnv) || !strings.Contains(err.Error(), addr) {
				t.Errorf("FromEnv = %v; want ErrBadEnv naming %q", err, addr)
			}
			if n != nil {
				t.Errorf("FromEnv = %v, want nil: nothing to report to", n)
			}
		})
	}
}

// reportPipe hands FromEnv the write end of a pipe the way Start does,
// through ReadyFDEnv, and returns the read end.
func reportPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	defer w.Close()
	// FromEnv takes ownership of the descriptor, so give it its own.
	fd, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(ReadyFDEnv, strconv.Itoa(fd))
	return r
}

// TestReportPipe checks what the parent reads for each way a daemon ends
// its report, and that FromEnv prepares the pipe and the environment.
func TestReportPipe(t *testing.T) {
	t.Setenv(NotifySocketEnv, "")
	tests := []struct {
		name   string
		report func(*Notifier) error
		want   string
	}{
		{"ready", (*Notifier).Ready, readyMessage},
		{"ready twice", func(n *Notifier) error { n.Ready(); return n.Ready() }, readyMessage},
		{"fail", func(n *Notifier) error { return n.Fail(errors.New("no listener")) }, failPrefix + "no listener"},
		{"fail after ready", func(n *Notifier) error { n.Ready(); return n.Fail(errors.New("late")) }, readyMessage},
		{"close", (*Notifier).Close, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := reportPipe(t)
			fd, _ := strconv.Atoi(os.Getenv(ReadyFDEnv))
			n, err := FromEnv()
			if err != nil || !n.Detached() {
				t.Fatalf("FromEnv = %v, %v; want a detached Notifier", n, err)
			}
			defer n.Close()
			if _, set := os.LookupEnv(ReadyFDEnv); set {
				t.Errorf("FromEnv left %s in the environment for child processes", ReadyFDEnv)
			}
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("report pipe flags = %#x, %v; want close-on-exec", flags, err)
			}
			if err := tt.report(n); err != nil {
				t.Fatal(err)
			}
			r.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(r)
			if err != nil || string(got) != tt.want {
				t.Errorf("parent read %q, %v; want %q and end of file", got, err, tt.want)
			}
		})
	}
}

// TestReportFDUnusable: a ReadyFDEnv that does not name a pipe is
// reported, and the process still knows it is a detached daemon, so
// that it does not detach again.
func TestReportFDUnusable(t *testing.T) {
	t.Setenv(NotifySocketEnv, "")
	regular, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	tests := map[string]string{
		"not a number":  "three",
		"stderr":        "2",
		"not open":      "987654",
		"regular file":  strconv.Itoa(int(regular.Fd())),
		"negative":      "-3",
		"empty":         "",
		"trailing junk": "3x",
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv(ReadyFDEnv, value)
			n, err := FromEnv()
			if !errors.Is(err, ErrBadEnv) || !strings.Contains(err.Error(), ReadyFDEnv) {
				t.Errorf("FromEnv error = %v; want ErrBadEnv naming %s", err, ReadyFDEnv)
			}
			if !n.Detached() {
				t.Error("FromEnv forgot that a parent waits")
			}
			if err := n.Ready(); err != nil {
				t.Errorf("Ready without a pipe = %v", err)
			}
		})
	}
}
