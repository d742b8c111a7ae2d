//go:build !linux

package daemon

import (
	"errors"
	"fmt"
)

// systemdSocket stands in for the sd_notify socket where there is no
// systemd, which is Linux-only.
type systemdSocket struct{}

// dialSystemd refuses NOTIFY_SOCKET: systemd runs on Linux only.
func dialSystemd(addr string) (*systemdSocket, error) {
	return nil, fmt.Errorf("%w: %s=%q: %w: systemd notification needs Linux", ErrBadEnv, NotifySocketEnv, addr, errors.ErrUnsupported)
}

func (s *systemdSocket) send([]byte) error { return errors.ErrUnsupported }

func (s *systemdSocket) close() error { return nil }

// monotonicMicros has no use without systemd.
func monotonicMicros() (int64, error) { return 0, errors.ErrUnsupported }
