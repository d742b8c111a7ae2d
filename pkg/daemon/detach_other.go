//go:build !linux

package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Start launches this program again as a daemon and waits until it
// reports. Detaching needs Linux (/proc/self/exe, setsid); elsewhere it
// returns an error wrapping errors.ErrUnsupported, so run weir in the
// foreground under a supervisor.
func Start(ctx context.Context, opts DetachOptions) (int, error) {
	return 0, fmt.Errorf("start daemon: %w: detaching needs Linux", errors.ErrUnsupported)
}

// adoptReportFD refuses the report pipe: only Start, which needs Linux,
// creates one.
func adoptReportFD(value string) (*os.File, error) {
	if _, err := parseFD(value); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s=%q: %w: daemon mode needs Linux", ErrBadEnv, ReadyFDEnv, value, errors.ErrUnsupported)
}
