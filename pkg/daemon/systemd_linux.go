package daemon

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// systemdSocket sends sd_notify messages to the socket NOTIFY_SOCKET
// names: a file system path, or an abstract name written with a leading
// '@' (Go's net package maps that '@' to the abstract namespace's NUL).
type systemdSocket struct {
	addr *net.UnixAddr
	conn *net.UnixConn
}

// dialSystemd connects to the notification socket at addr. Connecting
// checks the socket file's permissions once, now, so sending still works
// after the process has dropped root.
func dialSystemd(addr string) (*systemdSocket, error) {
	if addr[0] != '/' && addr[0] != '@' {
		return nil, fmt.Errorf("%w: %s=%q: want an absolute socket path or an @abstract name", ErrBadEnv, NotifySocketEnv, addr)
	}
	s := &systemdSocket{addr: &net.UnixAddr{Name: addr, Net: "unixgram"}}
	if err := s.dial(); err != nil {
		return nil, fmt.Errorf("%w: %s=%q: %w", ErrBadEnv, NotifySocketEnv, addr, err)
	}
	return s, nil
}

func (s *systemdSocket) dial() error {
	conn, err := net.DialUnix("unixgram", nil, s.addr)
	if err != nil {
		return err
	}
	s.conn = conn
	return nil
}

// send sends msg as one datagram. If systemd re-created its socket since
// (daemon-reexec), the connected socket fails, so send connects once
// more and retries.
func (s *systemdSocket) send(msg []byte) error {
	if s.conn != nil {
		if _, err := s.conn.Write(msg); err == nil {
			return nil
		}
		s.conn.Close()
		s.conn = nil
	}
	if err := s.dial(); err != nil {
		return err
	}
	_, err := s.conn.Write(msg)
	return err
}

func (s *systemdSocket) close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// monotonicMicros reads CLOCK_MONOTONIC in microseconds, the clock
// systemd compares a reload's MONOTONIC_USEC against.
func monotonicMicros() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return ts.Nano() / 1000, nil
}
