package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"golang.org/x/sys/unix"
)

// nobody is the uid and gid a root test gives files and processes that
// belong to another user.
const nobody = 65534

func TestDirectorySafety(t *testing.T) {
	tests := []struct {
		name  string
		mode  fs.FileMode
		owner int // -1: this process's user
		text  string
	}{
		{"private", 0o700, -1, ""},
		{"readable by all", 0o755, -1, ""},
		{"sticky and world-writable, as /tmp", 0o777 | fs.ModeSticky, -1, "writable by group or others (mode 0777)"},
		{"sticky and group-writable", 0o770 | fs.ModeSticky, -1, "mode 0770"},
		{"world-writable", 0o777, -1, "writable by group or others (mode 0777)"},
		{"group-writable", 0o770, -1, "mode 0770"},
		{"others may write", 0o703, -1, "mode 0703"},
		{"another user's", 0o755, nobody, "belongs to uid 65534"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 {
				testenv.NeedRoot(t)
			}
			dir := filepath.Dir(socketPath(t))
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if err := os.Chown(dir, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			err := checkDirectory(dir, os.Geteuid())
			if tc.text == "" {
				if err != nil {
					t.Fatalf("checkDirectory: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeSocketPath) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("checkDirectory = %v, want ErrUnsafeSocketPath mentioning %q", err, tc.text)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(filepath.Dir(socketPath(t)), "missing")
		if err := checkDirectory(dir, os.Geteuid()); !errors.Is(err, ErrUnsafeSocketPath) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("checkDirectory = %v", err)
		}
	})
	t.Run("a file", func(t *testing.T) {
		file := socketPath(t)
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkDirectory(file, os.Geteuid()); !errors.Is(err, ErrUnsafeSocketPath) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("checkDirectory = %v", err)
		}
	})
}

// TestReceiveRefusesAWorldWritableDirectory checks Receive itself gives
// up before creating anything.
func TestReceiveRefusesAWorldWritableDirectory(t *testing.T) {
	path := socketPath(t)
	if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Receive(testContext(t), path); !errors.Is(err, ErrUnsafeSocketPath) {
		t.Fatalf("Receive = %v, want ErrUnsafeSocketPath", err)
	}
	if _, err := os.Lstat(path + lockSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a lock file was created: %v", err)
	}
}

func TestSocketPathLimits(t *testing.T) {
	dir := filepath.Dir(socketPath(t))
	tests := []struct {
		name, path, text string
	}{
		{"empty", "", "empty"},
		{"too long", filepath.Join(dir, strings.Repeat("x", maxSocketPath)), "at most 107"},
		{"NUL byte", filepath.Join(dir, "a\x00b"), "NUL"},
	}
	for _, tc := range tests {
		ctx := testContext(t)
		if _, err := Receive(ctx, tc.path); !errors.Is(err, ErrUnsafeSocketPath) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: Receive = %v, want ErrUnsafeSocketPath mentioning %q", tc.name, err, tc.text)
		}
		if _, err := Offer(ctx, tc.path, nil); !errors.Is(err, ErrUnsafeSocketPath) {
			t.Errorf("%s: Offer = %v, want ErrUnsafeSocketPath", tc.name, err)
		}
	}
}

// TestSocketIsPrivate checks the modes of the socket and its lock, even
// under a umask that would open or close them.
func TestSocketIsPrivate(t *testing.T) {
	for _, umask := range []int{0, 0o022, 0o277} {
		t.Run(fmt.Sprintf("umask %#o", umask), func(t *testing.T) {
			path := socketPath(t) // before the umask applies to it
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			ctx, cancel := context.WithCancel(testContext(t))
			p := receiveAsync(t, ctx, path, defaultSettings())
			p.waitListening(t)
			checkMode(t, path, fs.ModeSocket|0o600)
			checkMode(t, path+lockSuffix, 0o600)
			cancel()
			if _, err := p.result(t); !errors.Is(err, ErrNoPeer) {
				t.Fatalf("Receive = %v, want ErrNoPeer", err)
			}
		})
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want || fileOwner(fi) != os.Geteuid() {
		t.Errorf("%s has mode %v, owner %d; want %v, owner %d", path, fi.Mode(), fileOwner(fi), want, os.Geteuid())
	}
}

// TestWhatIsAlreadyThere prepares the socket path and its lock in every
// way, and checks Receive replaces only a stale socket of its own user.
func TestWhatIsAlreadyThere(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		root    bool
		want    error // nil: the handoff works
		text    string
		kept    string // the file a refusal must leave alone: path+kept
	}{
		{"stale socket", func(t *testing.T, path string) { staleSocket(t, "unixpacket", path) }, false, nil, "", ""},
		{"stale stream socket", func(t *testing.T, path string) { staleSocket(t, "unix", path) }, false, nil, "", ""},
		{"live socket without the lock", func(t *testing.T, path string) { liveSocket(t, "unixpacket", path) }, false, ErrInProgress, "listens on", ""},
		{"another program's socket", func(t *testing.T, path string) { liveSocket(t, "unix", path) }, false, ErrUnsafeSocketPath, "in use by another program", ""},
		{"regular file", func(t *testing.T, path string) { writeFile(t, path) }, false, ErrUnsafeSocketPath, "a regular file, not a socket", ""},
		{"directory", func(t *testing.T, path string) { mkdir(t, path) }, false, ErrUnsafeSocketPath, "a directory, not a socket", ""},
		{"symbolic link", func(t *testing.T, path string) { symlink(t, path) }, false, ErrUnsafeSocketPath, "a symbolic link, not a socket", ""},
		{"lock is a symbolic link", func(t *testing.T, path string) { symlink(t, path+lockSuffix) }, false, ErrUnsafeSocketPath, "lock file", lockSuffix},
		{"lock is a FIFO", func(t *testing.T, path string) { mkfifo(t, path+lockSuffix) }, false, ErrUnsafeSocketPath, "not a regular file", lockSuffix},
		{"another user's stale socket", func(t *testing.T, path string) {
			staleSocket(t, "unixpacket", path)
			chown(t, path)
		}, true, ErrUnsafeSocketPath, "belongs to uid 65534", ""},
		{"another user's lock", func(t *testing.T, path string) {
			writeFile(t, path+lockSuffix)
			chown(t, path+lockSuffix)
		}, true, ErrUnsafeSocketPath, "belongs to uid 65534", lockSuffix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testenv.NeedRoot(t)
			}
			path := socketPath(t)
			tc.prepare(t, path)
			if tc.want != nil {
				_, err := Receive(testContext(t), path)
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("Receive = %v, want %v mentioning %q", err, tc.want, tc.text)
				}
				if _, err := os.Lstat(path + tc.kept); err != nil {
					t.Errorf("Receive removed what it refused: %v", err)
				}
				return
			}
			web := listenTCP(t, "127.0.0.1:0", false)
			in, _ := handoffAt(t, path, []Socket{socketOf(t, "web", 0, web)})
			if len(in.Sockets()) != 1 {
				t.Fatalf("received %d sockets", len(in.Sockets()))
			}
		})
	}
}

// handoffAt is handoff with a given socket path.
func handoffAt(t *testing.T, path string, sockets []Socket) (*Inheritance, *Handoff) {
	t.Helper()
	ctx := testContext(t)
	p := receiveAsync(t, ctx, path, defaultSettings())
	p.waitListening(t)
	h, err := Offer(ctx, path, sockets)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	in, err := p.result(t)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return in, h
}

// staleSocket leaves a socket file nobody listens on, as a crash does.
func staleSocket(t *testing.T, network, path string) {
	t.Helper()
	ln, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func liveSocket(t *testing.T, network, path string) {
	t.Helper()
	ln, err := net.Listen(network, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, path string) {
	t.Helper()
	target := path + ".target"
	writeFile(t, target)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string) {
	t.Helper()
	if err := os.Lchown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

func TestSameUserOrRoot(t *testing.T) {
	tests := []struct {
		self, peer int
		trusted    bool
	}{
		{1000, 1000, true},
		{1000, 0, true},
		{1000, 1001, false},
		{0, 0, true},
		{0, 1000, false},
	}
	for _, tc := range tests {
		err := sameUserOrRoot(tc.self)(unix.Ucred{Pid: 42, Uid: uint32(tc.peer), Gid: uint32(tc.peer)})
		if tc.trusted != (err == nil) {
			t.Errorf("self %d, peer %d: %v, want trusted=%v", tc.self, tc.peer, err, tc.trusted)
		}
		want := fmt.Sprintf("pid 42 runs as uid %d", tc.peer)
		if err != nil && (!errors.Is(err, ErrPeerCredentials) || !strings.Contains(err.Error(), want)) {
			t.Errorf("self %d, peer %d: %v, want ErrPeerCredentials mentioning %q", tc.self, tc.peer, err, want)
		}
	}
}

// TestPeerCredentialsRefused makes each side distrust the other, and
// checks that the credentials it judged are the kernel's (this very
// process) and that the refusal ends the handoff on both sides.
func TestPeerCredentialsRefused(t *testing.T) {
	distrust := func(seen chan<- unix.Ucred) func(unix.Ucred) error {
		return func(c unix.Ucred) error {
			seen <- c
			return fmt.Errorf("%w: this test trusts nobody (uid %d)", ErrPeerCredentials, c.Uid)
		}
	}
	self := unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}

	t.Run("the new process refuses the old", func(t *testing.T) {
		seen := make(chan unix.Ucred, 1)
		s := defaultSettings()
		s.trust = distrust(seen)
		path := socketPath(t)
		ctx := testContext(t)
		p := receiveAsync(t, ctx, path, s)
		p.waitListening(t)
		web := listenTCP(t, "127.0.0.1:0", false)
		h, err := Offer(ctx, path, []Socket{socketOf(t, "web", 0, web)})
		if err == nil {
			err = h.Wait(ctx)
		}
		if !errors.Is(err, ErrPeerGone) {
			t.Errorf("the old process got %v, want ErrPeerGone", err)
		}
		if _, err := p.result(t); !errors.Is(err, ErrPeerCredentials) {
			t.Errorf("Receive = %v, want ErrPeerCredentials", err)
		}
		if c := <-seen; c != self {
			t.Errorf("judged %+v, want this process %+v", c, self)
		}
		checkServes(t, web)
	})
	t.Run("the old process refuses the new", func(t *testing.T) {
		seen := make(chan unix.Ucred, 1)
		s := defaultSettings()
		s.trust = distrust(seen)
		path := socketPath(t)
		ctx := testContext(t)
		p := receiveAsync(t, ctx, path, defaultSettings())
		p.waitListening(t)
		web := listenTCP(t, "127.0.0.1:0", false)
		if _, err := offer(ctx, path, []Socket{socketOf(t, "web", 0, web)}, nil, s); !errors.Is(err, ErrPeerCredentials) {
			t.Errorf("Offer = %v, want ErrPeerCredentials", err)
		}
		if in, err := p.result(t); !errors.Is(err, ErrPeerGone) || in != nil {
			t.Errorf("Receive = %v, %v; want no sockets and ErrPeerGone", in, err)
		}
		if c := <-seen; c != self {
			t.Errorf("judged %+v, want this process %+v", c, self)
		}
	})
}
