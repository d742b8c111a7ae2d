package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pidFileMode lets anyone read the pid (scripts, monitoring) and only the
// owner replace it.
const pidFileMode = 0o644

// maxPIDFileSize bounds what ReadPIDFile reads: a pid has at most 10
// digits, and anything much longer is not a pid file.
const maxPIDFileSize = 64

// WritePIDFile records pid in the file at path, replacing it atomically:
// the content goes to a temporary file in the same directory, is flushed
// to disk, and is renamed over path, so a reader sees the old pid or the
// new one, never a partial file. The file holds the decimal pid and a
// newline, mode 0644 whatever the umask.
//
// The directory is not flushed after the rename: a pid file names a
// running process, and after a crash of the machine it is stale anyway.
func WritePIDFile(path string, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("write pid file %s: %d is not a process id", path, pid)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := fillPIDFile(tmp, pid); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// fillPIDFile writes pid to the new file f, flushes and closes it.
func fillPIDFile(f *os.File, pid int) error {
	err := f.Chmod(pidFileMode)
	if err == nil {
		_, err = f.WriteString(strconv.Itoa(pid) + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// ReadPIDFile returns the pid recorded in the file at path. A missing
// file yields an error wrapping fs.ErrNotExist; one that does not hold a
// single positive decimal number, one wrapping ErrBadPIDFile.
func ReadPIDFile(path string) (int, error) {
	pid, _, err := readPIDFile(path)
	return pid, err
}

// readPIDFile reads the pid at path, and the identity of the file it came
// from, so that a caller can tell whether path was replaced since.
func readPIDFile(path string) (int, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("read pid file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("read pid file: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPIDFileSize+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read pid file %s: %w", path, err)
	}
	pid, err := parsePID(data)
	if err != nil {
		return 0, nil, fmt.Errorf("%w %s: %w", ErrBadPIDFile, path, err)
	}
	return pid, info, nil
}

// parsePID parses a pid file's content: a positive decimal number, with
// surrounding white space allowed.
func parsePID(data []byte) (int, error) {
	if len(data) > maxPIDFileSize {
		return 0, fmt.Errorf("longer than %d bytes", maxPIDFileSize)
	}
	text := strings.TrimSpace(string(data))
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("content %q is not a process id", text)
	}
	return pid, nil
}

// RemovePIDFile removes the pid file at path if it still names pid, as a
// process exiting cleanly does. A file naming another process is left in
// place and is no error: a successor started by a graceful upgrade has
// rewritten it. A missing file is no error either. A malformed one is
// left alone and reported.
//
// Between checking the file and removing it, a successor could rename
// its own into place; RemovePIDFile checks that the file it read is
// still the one at path just before removing it, which narrows that
// window to two system calls.
func RemovePIDFile(path string, pid int) error {
	got, read, err := readPIDFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove pid file: %w", err)
	}
	if got != pid {
		return nil
	}
	now, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove pid file: %w", err)
	}
	if !os.SameFile(read, now) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pid file: %w", err)
	}
	return nil
}
