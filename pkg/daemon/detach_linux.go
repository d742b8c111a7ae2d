package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// selfExe is this process's executable. Through /proc it names the
// running binary even when the file on disk was replaced or deleted
// since, as a package upgrade does.
const selfExe = "/proc/self/exe"

// reportFD is the daemon's descriptor for the report pipe: the first of
// exec.Cmd.ExtraFiles, after standard input, output and error.
const reportFD = 3

// Start launches this program again as a daemon, in a new session, and
// waits until it reports. It returns the daemon's pid and nil once the
// daemon has called Ready; the caller should then exit 0.
//
// Otherwise it returns an error and nothing of the daemon is left
// running (its process group is killed): the
// daemon's own message (ErrStartFailed) when it called Fail; its exit
// status and the last lines it wrote to ErrorLog (ErrExited) when it
// ended without a word; ErrReadyTimeout after killing a daemon that said
// nothing for ReadyTimeout; ctx's error after killing it when ctx ends
// first. A daemon that reported failure gets until the same deadline to
// exit by itself before it is killed, so that it may clean up. The pid
// comes with these errors too, once a daemon was started.
func Start(ctx context.Context, opts DetachOptions) (int, error) {
	log, out, err := openDaemonLog(opts.ErrorLog)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start daemon: report pipe: %w", err)
	}
	defer r.Close()
	cmd := daemonCommand(opts, out, w)
	err = cmd.Start()
	// The daemon holds its own copy; keeping this one would hide the end
	// of file that tells a daemon's death.
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("start daemon %s: %w", os.Args[0], err)
	}
	pid := cmd.Process.Pid // before wait, whose Release forgets it
	timeout := opts.readyTimeout()
	wt := &waiter{proc: cmd.Process, log: log, deadline: time.NewTimer(timeout), timeout: timeout}
	defer wt.deadline.Stop()
	return pid, wt.wait(ctx, r)
}

// daemonCommand describes the daemon process: this executable in a new
// session, reading /dev/null (exec's default for a nil Stdin), writing
// to out, with the report pipe w as descriptor reportFD.
func daemonCommand(opts DetachOptions, out, w *os.File) *exec.Cmd {
	return &exec.Cmd{
		Path:        selfExe,
		Args:        append([]string{os.Args[0]}, opts.Args...),
		Env:         childEnv(opts.Env, reportFD),
		Dir:         opts.Dir,
		Stdout:      out, // an *os.File: the daemon gets the descriptor itself
		Stderr:      out,
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
}

// openDaemonLog opens the file the daemon's output goes to, and notes its
// size so that a failure quotes only the daemon's own lines.
func openDaemonLog(path string) (daemonLog, *os.File, error) {
	if path == "" {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return daemonLog{}, nil, fmt.Errorf("start daemon: %w", err)
		}
		return daemonLog{}, f, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return daemonLog{}, nil, fmt.Errorf("start daemon: open error_log: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return daemonLog{}, nil, fmt.Errorf("start daemon: error_log: %w", err)
	}
	return daemonLog{path: path, start: info.Size()}, f, nil
}

// waiter follows one daemon until it reports, ends, or runs out of time.
type waiter struct {
	proc     *os.Process
	log      daemonLog
	deadline *time.Timer
	timeout  time.Duration
}

// readResult is what the pipe yielded up to its end of file.
type readResult struct {
	data []byte
	err  error
}

// wait reads the daemon's report from r and turns it into Start's result.
func (wt *waiter) wait(ctx context.Context, r *os.File) error {
	reports := make(chan readResult, 1)
	go func() { reports <- readReport(r) }()
	select {
	case rep := <-reports:
		return wt.reported(ctx, rep)
	case <-wt.deadline.C:
		r.Close() // unblocks the reader, should a stray copy of the pipe live on
		<-reports
		state := wt.kill()
		return fmt.Errorf("%w: pid %d said nothing within %v and was killed (%s)%s",
			ErrReadyTimeout, wt.proc.Pid, wt.timeout, describeState(state), wt.log.describe())
	case <-ctx.Done():
		r.Close()
		<-reports
		state := wt.kill()
		return fmt.Errorf("waiting for daemon pid %d: %w; it was killed (%s)", wt.proc.Pid, ctx.Err(), describeState(state))
	}
}

// readReport reads the daemon's report up to the end of file, or up to
// a complete ready message: a process the daemon started before it took
// the pipe over may hold a copy open, and must not turn a daemon that
// serves into a timeout. A failure's text has no end marker but the end
// of file.
func readReport(r io.Reader) readResult {
	var data []byte
	buf := make([]byte, 4096)
	for len(data) < maxReport {
		n, err := r.Read(buf[:min(len(buf), maxReport-len(data))])
		data = append(data, buf[:n]...)
		switch {
		case string(data) == readyMessage:
			return readResult{data: data}
		case err == io.EOF:
			return readResult{data: data}
		case err != nil:
			return readResult{data: data, err: err}
		}
	}
	return readResult{data: data}
}

// reported handles what the pipe yielded: a report, or the silence of a
// daemon that is gone.
func (wt *waiter) reported(ctx context.Context, rep readResult) error {
	kind, msg := parseReport(rep.data)
	switch kind {
	case reportReady:
		// The daemon lives on; this process will not wait for it.
		wt.proc.Release()
		return nil
	case reportFailed:
		wt.reap(ctx)
		return fmt.Errorf("%w: %s", ErrStartFailed, msg)
	}
	state, killed := wt.reap(ctx)
	why := describeState(state)
	if killed {
		why = "closed its report pipe, then was killed after " + why
	}
	if rep.err != nil {
		why += fmt.Sprintf("; reading its report: %v", rep.err)
	}
	return fmt.Errorf("%w: pid %d: %s%s", ErrExited, wt.proc.Pid, why, wt.log.describe())
}

// reap waits for the daemon to exit until the deadline or ctx ends, and
// kills it then. It reports whether the daemon had to be killed. Processes
// the daemon started and left behind are killed either way.
func (wt *waiter) reap(ctx context.Context) (*os.ProcessState, bool) {
	exited := wt.waitAsync()
	select {
	case st := <-exited:
		unix.Kill(-wt.proc.Pid, unix.SIGKILL)
		return st, false
	case <-wt.deadline.C:
	case <-ctx.Done():
	}
	wt.killGroup()
	return <-exited, true
}

// kill kills the daemon and collects its exit status.
func (wt *waiter) kill() *os.ProcessState {
	exited := wt.waitAsync()
	wt.killGroup()
	return <-exited
}

// killGroup kills the daemon and every process it started: setsid made
// the daemon the leader of a process group of its own, and a failed start
// must leave none of them behind. The daemon itself is also killed by
// pid, in case it moved to another group. Linux allocates no pid still in
// use as a process group's id, so the group is the daemon's.
func (wt *waiter) killGroup() {
	unix.Kill(-wt.proc.Pid, unix.SIGKILL)
	wt.proc.Kill()
}

// waitAsync waits for the daemon in the background; the channel yields
// its state (nil if waiting failed).
func (wt *waiter) waitAsync() <-chan *os.ProcessState {
	exited := make(chan *os.ProcessState, 1)
	go func() {
		st, err := wt.proc.Wait()
		if err != nil {
			st = nil
		}
		exited <- st
	}()
	return exited
}

// describeState renders an exit status as "exit status 1" or
// "signal: killed".
func describeState(st *os.ProcessState) string {
	if st == nil {
		return "exit status unknown"
	}
	return st.String()
}

// adoptReportFD takes over the report pipe named by ReadyFDEnv's value:
// it must be an open pipe above standard error. The descriptor is marked
// close-on-exec so that no process the daemon starts keeps the pipe open
// and hides the daemon's death from the parent.
func adoptReportFD(value string) (*os.File, error) {
	fd, err := parseFD(value)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%w: %s=%q: %w", ErrBadEnv, ReadyFDEnv, value, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("%w: %s=%q: descriptor %d is not a pipe", ErrBadEnv, ReadyFDEnv, value, fd)
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "daemon report pipe"), nil
}
