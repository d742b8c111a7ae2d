package bpffs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Ensure makes dir a directory on a bpffs: when neither it nor its parent
// is on one, it mounts a bpffs (mode 0700) on the parent, as an operator
// would on /sys/fs/bpf. Directories it creates are private (0700).
//
// The mount is made in the caller's mount namespace; when that is not
// the host's (under `ip netns exec`), it goes with the namespace, and
// Persistent says so.
func Ensure(dir string) error {
	if On(dir) {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create bpffs mount point %s: %w", parent, err)
	}
	if !On(parent) {
		if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", parent, err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create pin directory %s: %w", dir, err)
	}
	return nil
}

// On reports whether path exists on a bpf filesystem.
func On(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// initMountinfo lists the mounts of PID 1's mount namespace: the host's,
// or a container's, which outlives any process started in it.
const initMountinfo = "/proc/1/mountinfo"

// Persistent tells whether objects pinned under path outlive this
// process: it returns nil when the bpffs path is on is also mounted in
// PID 1's mount namespace (as it is when this process runs in that
// namespace, or in a copy of it that kept the mount), and an error
// wrapping ErrPrivate when it is not, as when `ip netns exec` gave this
// process a mount namespace of its own with a fresh /sys and a bpffs was
// mounted there. Each bpffs mount is a filesystem of its own, so the one
// holding path is known by its device number. Other errors say that it
// cannot tell (path on no bpffs, PID 1's mounts unreadable).
func Persistent(path string) error {
	f, err := os.Open(initMountinfo)
	if err != nil {
		return fmt.Errorf("bpffs: list the mounts of PID 1: %w", err)
	}
	defer f.Close()
	return persistent(path, f)
}

func persistent(path string, initMounts io.Reader) error {
	if !On(path) {
		return fmt.Errorf("bpffs: %s is not on a bpffs", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("bpffs: %w", &os.PathError{Op: "stat", Path: path, Err: err})
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	found, err := hasBPFMount(initMounts, dev)
	if err != nil {
		return fmt.Errorf("bpffs: read %s: %w", initMountinfo, err)
	}
	if !found {
		return fmt.Errorf("%w: %s (bpffs %s is not mounted in PID 1's mount namespace)", ErrPrivate, path, dev)
	}
	return nil
}

// hasBPFMount reports whether mountinfo (proc(5)) lists a bpf mount of
// device dev ("major:minor").
func hasBPFMount(mountinfo io.Reader, dev string) (bool, error) {
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 3 || string(fields[2]) != dev {
			continue
		}
		for i := 6; i+1 < len(fields); i++ {
			if string(fields[i]) == "-" {
				if string(fields[i+1]) == "bpf" {
					return true, nil
				}
				break
			}
		}
	}
	return false, sc.Err()
}
