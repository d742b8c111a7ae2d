package bpffs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Ensure makes dir a directory on a bpffs: when neither it nor its parent
// is on one, it mounts a bpffs (mode 0700) on the parent, as an operator
// would on /sys/fs/bpf. Directories it creates are private (0700).
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
