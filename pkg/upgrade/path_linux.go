package upgrade

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// maxSocketPath is the longest path a Unix socket address holds on
	// Linux: sun_path is 108 bytes, one of which ends the string.
	maxSocketPath = 107
	// lockSuffix names the lock file beside the socket.
	lockSuffix = ".lock"
	// socketMode lets only the owner (and root) connect.
	socketMode = 0o600
	// listenBacklog is plenty: the new process serves one connection.
	listenBacklog = 16
)

// checkSocketPath refuses a path that cannot name a Unix socket.
func checkSocketPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("upgrade: %w: upgrade_sock is empty", ErrUnsafeSocketPath)
	case len(path) > maxSocketPath:
		return fmt.Errorf("upgrade: %w: %s is %d bytes long, and a Unix socket path holds at most %d", ErrUnsafeSocketPath, path, len(path), maxSocketPath)
	case strings.IndexByte(path, 0) >= 0:
		return fmt.Errorf("upgrade: %w: %q contains a NUL byte", ErrUnsafeSocketPath, path)
	}
	return nil
}

// checkDirectory refuses a directory in which another user could replace
// the upgrade socket or its lock: one owned by someone other than euid
// or root, or writable by group or others. A sticky directory such as
// /tmp (1777) is refused too: others cannot remove weir's socket there,
// but they can create the name first and wait for weir to give up or be
// tricked, and an operator reading "mode 0600 in a private directory"
// should be able to rely on it.
func checkDirectory(dir string, euid int) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("upgrade: %w: directory %s does not exist; create it, owned by the user weir runs as, mode 0700 or 0755", ErrUnsafeSocketPath, dir)
	}
	if err != nil {
		return fmt.Errorf("upgrade: %w: %w", ErrUnsafeSocketPath, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("upgrade: %w: %s is not a directory", ErrUnsafeSocketPath, dir)
	}
	if uid := fileOwner(fi); uid != euid && uid != 0 {
		return fmt.Errorf("upgrade: %w: directory %s belongs to uid %d; it must belong to uid %d (this process's user) or root, or its owner could replace the socket", ErrUnsafeSocketPath, dir, uid, euid)
	}
	mode := fi.Mode()
	if mode.Perm()&0o022 != 0 {
		return fmt.Errorf("upgrade: %w: directory %s is writable by group or others (mode %#o), so another user could plant or replace the socket; choose upgrade_sock in a private directory such as /run/weir, or run chmod go-w %s", ErrUnsafeSocketPath, dir, mode.Perm(), dir)
	}
	return nil
}

// fileOwner is the uid of a file from os.Stat or os.Lstat.
func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// upgradeLock is the flock(2) on PATH.lock that makes one new process
// at a time the receiver. The kernel drops it when its holder exits, so
// a crashed upgrade never blocks the next one. The file itself stays:
// removing a lock file races with the next process opening it.
type upgradeLock struct {
	f *os.File
}

// acquireLock takes the upgrade lock at name, or explains who holds it.
func acquireLock(name string, euid int) (*upgradeLock, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, socketMode)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("upgrade: %w: lock file %s is a symbolic link", ErrUnsafeSocketPath, name)
	}
	if err != nil {
		return nil, fmt.Errorf("upgrade: open lock file: %w", err)
	}
	if err := checkLockFile(f, name, euid); err != nil {
		f.Close()
		return nil, err
	}
	// Undo a umask that took the owner's write bit: the next receiver
	// must be able to open the file to learn that the lock is taken.
	if err := f.Chmod(socketMode); err != nil {
		f.Close()
		return nil, fmt.Errorf("upgrade: chmod lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("upgrade: %w (%s holds %s)", ErrInProgress, lockHolder(f), name)
		}
		return nil, fmt.Errorf("upgrade: lock %s: %w", name, os.NewSyscallError("flock", err))
	}
	// The pid is only for the message above; the flock is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &upgradeLock{f: f}, nil
}

// checkLockFile refuses a lock file that another user planted.
func checkLockFile(f *os.File, name string, euid int) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upgrade: stat lock file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("upgrade: %w: lock file %s is not a regular file (%s)", ErrUnsafeSocketPath, name, fi.Mode().Type())
	}
	if uid := fileOwner(fi); uid != euid {
		return fmt.Errorf("upgrade: %w: lock file %s belongs to uid %d, not %d (this process's user); remove it", ErrUnsafeSocketPath, name, uid, euid)
	}
	return nil
}

// lockHolder names the process holding the lock, as it recorded itself.
func lockHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n]))); err == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process"
}

// release clears the recorded pid and drops the lock.
func (l *upgradeLock) release() {
	_ = l.f.Truncate(0)
	l.f.Close()
}

// listenSocket binds the upgrade socket at path (mode 0600 from its
// creation), after removing a stale one. It returns the listener and
// the file's identity, so that only this very file is removed later.
func listenSocket(path string, euid int) (*net.UnixListener, fs.FileInfo, error) {
	if err := removeStale(path, euid); err != nil {
		return nil, nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade: %w", os.NewSyscallError("socket", err))
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	id, err := bindPrivate(fd, path, euid)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.FileListener(f)
	if err != nil {
		removeOwn(path, id)
		return nil, nil, fmt.Errorf("upgrade: listen on %s: %w", path, err)
	}
	return ln.(*net.UnixListener), id, nil
}

// bindPrivate binds and listens on fd at path. Linux creates the socket
// file with the mode of the socket's own inode (less the umask), so a
// fchmod before bind means no other user can ever connect, not even for
// an instant; the chmod after restores the owner's bits a strict umask
// took away, without which the old process could not connect either.
func bindPrivate(fd int, path string, euid int) (fs.FileInfo, error) {
	if err := unix.Fchmod(fd, socketMode); err != nil {
		return nil, fmt.Errorf("upgrade: %w", os.NewSyscallError("fchmod", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("upgrade: %w: %s appeared while this process created it", ErrInProgress, path)
		}
		return nil, fmt.Errorf("upgrade: bind %s: %w", path, os.NewSyscallError("bind", err))
	}
	id, err := os.Lstat(path)
	if err == nil {
		err = checkOwnSocket(id, path, euid)
	}
	if err == nil {
		err = os.Chmod(path, socketMode)
	}
	if err == nil {
		err = os.NewSyscallError("listen", unix.Listen(fd, listenBacklog))
	}
	if err != nil {
		if id != nil {
			removeOwn(path, id)
		}
		return nil, fmt.Errorf("upgrade: listen on %s: %w", path, err)
	}
	return id, nil
}

// checkOwnSocket checks that path is the socket this process just bound.
func checkOwnSocket(fi fs.FileInfo, path string, euid int) error {
	if fi.Mode().Type() != fs.ModeSocket || fileOwner(fi) != euid {
		return fmt.Errorf("%w: %s is not the socket this process bound", ErrUnsafeSocketPath, path)
	}
	return nil
}

// removeStale removes a socket file that nobody listens on any more (a
// crashed new process leaves one), and refuses anything else at path.
func removeStale(path string, euid int) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("upgrade: %w: %w", ErrUnsafeSocketPath, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("upgrade: %w: %s exists and is %s, not a socket; remove it or choose another upgrade_sock", ErrUnsafeSocketPath, path, describeType(fi.Mode()))
	}
	if uid := fileOwner(fi); uid != euid {
		return fmt.Errorf("upgrade: %w: socket %s belongs to uid %d, not %d (this process's user); remove it", ErrUnsafeSocketPath, path, uid, euid)
	}
	conn, err := net.Dial("unixpacket", path)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("upgrade: %w: a process listens on %s without holding %s%s", ErrInProgress, path, path, lockSuffix)
	case errors.Is(err, unix.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("upgrade: remove stale socket: %w", err)
		}
		return nil
	}
	return fmt.Errorf("upgrade: %w: %s is in use by another program (%w)", ErrUnsafeSocketPath, path, err)
}

// describeType names a file type for an error message.
func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	}
	return "a " + m.Type().String() + " file"
}

// removeOwn removes path if it is still the file id names.
func removeOwn(path string, id fs.FileInfo) {
	if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, id) {
		os.Remove(path)
	}
}
