package daemon

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// DropPrivileges switches the process to userName and groupName (names or
// numeric ids; empty keeps the current one) for good: supplementary
// groups first, then the group, then the user, real, effective and saved
// ids alike, so that root cannot be regained. Since Go 1.16 these calls
// apply to every thread of the process. Call it after the listeners are
// bound and the BPF objects loaded, and before Ready.
//
// Nothing is kept: no capability survives the switch from root (see the
// package README for what that means for BPF). Both names empty is a
// no-op. A process that is not root gets ErrNeedRoot, unless it already
// runs as the identity asked for. Afterwards the identity is read back,
// and any difference from the one asked for, such as an id still 0,
// yields ErrStillPrivileged. On any error the identity may be partly
// changed: the caller must exit rather than serve.
func DropPrivileges(userName, groupName string) error {
	if userName == "" && groupName == "" {
		return nil
	}
	id, err := resolveIdentity(userName, groupName, os.Getuid())
	if err != nil {
		return fmt.Errorf("drop privileges: %w", err)
	}
	if euid := os.Geteuid(); euid != 0 {
		if processIs(id) == nil {
			return nil
		}
		return fmt.Errorf("switch to %s: %w (it runs as uid %d)", id, ErrNeedRoot, euid)
	}
	if err := switchTo(id); err != nil {
		return fmt.Errorf("switch to %s: %w", id, err)
	}
	if err := processIs(id); err != nil {
		return fmt.Errorf("switch to %s: %w", id, err)
	}
	return nil
}

// switchTo applies id, groups before the group and the group before the
// user, because only root may change them.
func switchTo(id identity) error {
	if err := syscall.Setgroups(id.groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", id.groups, err)
	}
	if err := syscall.Setgid(id.gid); err != nil {
		return fmt.Errorf("setgid %d: %w", id.gid, err)
	}
	if id.keepUID {
		return nil
	}
	if err := syscall.Setuid(id.uid); err != nil {
		return fmt.Errorf("setuid %d: %w", id.uid, err)
	}
	return nil
}

// processIs checks that the real, effective and saved ids and the
// supplementary groups of the process are those of id.
func processIs(id identity) error {
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("read back supplementary groups: %w", err)
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	if ruid != id.uid || euid != id.uid || suid != id.uid ||
		rgid != id.gid || egid != id.gid || sgid != id.gid ||
		!slices.Equal(groups, id.groups) {
		return fmt.Errorf("%w: uid %d/%d/%d, gid %d/%d/%d (real/effective/saved), groups %v; want uid %d, gid %d, groups %v",
			ErrStillPrivileged, ruid, euid, suid, rgid, egid, sgid, groups, id.uid, id.gid, id.groups)
	}
	return nil
}
