//go:build !linux

package daemon

import (
	"errors"
	"fmt"
)

// DropPrivileges switches the process to userName and groupName for good
// on Linux. Elsewhere the switch would not reach every thread of a Go
// program, so any non-empty name yields an error wrapping
// errors.ErrUnsupported; both empty is a no-op.
func DropPrivileges(userName, groupName string) error {
	if userName == "" && groupName == "" {
		return nil
	}
	return fmt.Errorf("switch to user %q, group %q: %w: dropping privileges needs Linux", userName, groupName, errors.ErrUnsupported)
}
