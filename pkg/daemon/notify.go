package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// NotifySocketEnv is the variable through which systemd (Type=notify)
// names the datagram socket that takes a service's state changes.
const NotifySocketEnv = "NOTIFY_SOCKET"

// Notifier tells whoever started weir how start-up went: the parent
// waiting in Start, through the inherited pipe, and systemd, through
// NOTIFY_SOCKET. Either may be absent. A nil *Notifier is valid and does
// nothing, so code that reports runs unchanged in the foreground.
//
// Its methods are safe for concurrent use. Errors they return are for the
// log only: a parent that gave up waiting, or a restarted systemd, must
// not stop a daemon that serves.
type Notifier struct {
	mu       sync.Mutex
	detached bool
	report   *os.File       // write end of Start's pipe; nil when absent or used
	systemd  *systemdSocket // nil without NOTIFY_SOCKET
}

var _ io.Closer = (*Notifier)(nil)

// FromEnv returns the Notifier this process's environment asks for, or
// nil when it was neither started by Start nor by systemd with
// Type=notify. Call it once, early: it takes over the report pipe and
// removes ReadyFDEnv from the environment, so a second call, or a
// process started later, finds no pipe. NOTIFY_SOCKET stays, so that a
// successor started by a graceful upgrade can report to systemd too.
//
// Its socket to systemd is connected here, while the process may still
// be root, so that it keeps working after DropPrivileges.
//
// An unusable variable yields an error wrapping ErrBadEnv together with
// the Notifier for what did work. Treat it as a start-up failure: pass it
// to Fail, which reaches whatever did work, print it, and exit non-zero;
// a parent waiting in Start then reports it, or the exit and the printed
// lines.
func FromEnv() (*Notifier, error) {
	n := &Notifier{}
	var errs []error
	if value, ok := os.LookupEnv(ReadyFDEnv); ok {
		os.Unsetenv(ReadyFDEnv)
		n.detached = true
		f, err := adoptReportFD(value)
		if err != nil {
			errs = append(errs, err)
		}
		n.report = f
	}
	if addr := os.Getenv(NotifySocketEnv); addr != "" {
		s, err := dialSystemd(addr)
		if err != nil {
			errs = append(errs, err)
		}
		n.systemd = s
	}
	if !n.detached && n.systemd == nil {
		return nil, errors.Join(errs...)
	}
	return n, errors.Join(errs...)
}

// parseFD reads a descriptor number from ReadyFDEnv's value. Standard
// input, output and error are refused: closing one after the report
// would silence the daemon.
func parseFD(value string) (int, error) {
	fd, err := strconv.Atoi(value)
	if err != nil || fd <= 2 {
		return 0, fmt.Errorf("%w: %s=%q: want a file descriptor number above 2", ErrBadEnv, ReadyFDEnv, value)
	}
	return fd, nil
}

// Detached reports whether this process is a daemon launched by Start,
// whose parent waits for Ready or Fail. It stays true after the report,
// and is what tells a daemon not to detach again.
func (n *Notifier) Detached() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.detached
}

// Ready reports that weir is serving: the waiting parent returns nil from
// Start and exits 0, and systemd gets READY=1. Call it after the pid file
// is written, so that a service manager that reads the file when the
// parent exits (systemd's Type=forking) finds it. Later calls, after a
// reload, reach systemd only.
func (n *Notifier) Ready() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.sendReport([]byte(readyMessage)), n.notify("READY=1"))
}

// Fail reports that weir could not start, with err as the reason: the
// waiting parent prints it and exits non-zero, and systemd shows it as
// the service's status. The caller should exit non-zero next.
func (n *Notifier) Fail(err error) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	reason := "no reason given"
	if err != nil {
		reason = err.Error()
	}
	return errors.Join(n.sendReport(failMessage(err)), n.notify("STATUS="+oneLine("failed to start: "+reason)))
}

// Reloading tells systemd that weir began reloading its configuration
// (RELOADING=1, with the MONOTONIC_USEC that Type=notify-reload wants);
// Ready ends the reload.
func (n *Notifier) Reloading() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.systemd == nil {
		return nil
	}
	usec, err := monotonicMicros()
	if err != nil {
		return fmt.Errorf("notify systemd (RELOADING=1): %w", err)
	}
	return n.notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(usec, 10))
}

// Stopping tells systemd that weir began shutting down (STOPPING=1).
func (n *Notifier) Stopping() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.notify("STOPPING=1")
}

// Status sets the one-line status systemctl status shows (STATUS=...);
// line breaks in text become "; ".
func (n *Notifier) Status(text string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.notify("STATUS=" + oneLine(text))
}

// HandOver tells systemd, at the end of a graceful upgrade, that pid (the
// new weir process, now serving) is the service's main process and that
// the reload is over: MAINPID=pid and READY=1 in one message, because
// once systemd knows the new main pid it ignores this process's messages
// (NotifyAccess=main). Call it before this process exits, or systemd
// takes its exit for the service's.
func (n *Notifier) HandOver(pid int) error {
	if n == nil {
		return nil
	}
	if pid <= 0 {
		return fmt.Errorf("hand over to pid %d: not a process id", pid)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.notify("MAINPID="+strconv.Itoa(pid), "READY=1")
}

// Close releases the pipe and the socket. A daemon that closes its
// Notifier before reporting makes Start wait for its exit and report
// ErrExited.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	if n.report != nil {
		errs = append(errs, n.report.Close())
		n.report = nil
	}
	if n.systemd != nil {
		errs = append(errs, n.systemd.close())
		n.systemd = nil
	}
	return errors.Join(errs...)
}

// sendReport writes msg to the parent, once, and closes the pipe: the end
// of file is what completes the report. Called with n.mu held.
func (n *Notifier) sendReport(msg []byte) error {
	if n.report == nil {
		return nil
	}
	_, werr := n.report.Write(msg)
	cerr := n.report.Close()
	n.report = nil
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("report to the parent process: %w", err)
	}
	return nil
}

// notify sends one message of newline-separated assignments to systemd.
// Called with n.mu held.
func (n *Notifier) notify(assignments ...string) error {
	if n.systemd == nil {
		return nil
	}
	if err := n.systemd.send([]byte(strings.Join(assignments, "\n"))); err != nil {
		return fmt.Errorf("notify systemd (%s): %w", assignments[0], err)
	}
	return nil
}

// oneLine folds text onto one line, as a systemd assignment must be.
func oneLine(text string) string {
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' })
	return strings.Join(lines, "; ")
}
