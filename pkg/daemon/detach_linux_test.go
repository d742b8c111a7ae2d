package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startRole starts the test binary as a daemon playing role.
func startRole(ctx context.Context, role, errorLog string, timeout time.Duration) (int, error) {
	return Start(ctx, DetachOptions{
		Args:         []string{"-test.run=^$"}, // were the role ignored, run no test
		Env:          roleEnviron(role),
		ErrorLog:     errorLog,
		ReadyTimeout: timeout,
	})
}

// stopDaemon sends SIGTERM to a daemon Start left running and waits, at
// most 10 s, for it to exit 0.
func stopDaemon(t *testing.T, pid int) {
	t.Helper()
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := p.Wait()
		exited <- st
	}()
	p.Signal(syscall.SIGTERM)
	select {
	case st := <-exited:
		if st == nil || !st.Success() {
			t.Errorf("daemon %d did not exit cleanly on SIGTERM: %v", pid, st)
		}
	case <-time.After(10 * time.Second):
		p.Kill()
		<-exited
		t.Errorf("daemon %d ignored SIGTERM for 10s", pid)
	}
}

// TestStartReady starts a daemon that reports ready, and checks what a
// daemon must be: in a session of its own, reading /dev/null, writing to
// error_log, with a close-on-exec report pipe and no ReadyFDEnv to pass
// on.
func TestStartReady(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "error.log")
	pid, err := startRole(context.Background(), "ready", logPath, 30*time.Second)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer stopDaemon(t, pid)

	sid, err := unix.Getsid(pid)
	if err != nil || sid != pid {
		t.Errorf("getsid(%d) = %d, %v; want a session of its own (%d)", pid, sid, err, pid)
	}
	if pgid, _ := unix.Getpgid(pid); pgid == unix.Getpgrp() {
		t.Errorf("daemon is in the test's process group %d", pgid)
	}
	for fd, want := range map[int]string{0: os.DevNull, 1: logPath, 2: logPath} {
		got, err := os.Readlink(filepath.Join("/proc", itoa(pid), "fd", itoa(fd)))
		if err != nil || got != want {
			t.Errorf("daemon fd %d is %q (%v), want %q", fd, got, err, want)
		}
	}
	logText, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"daemon stdout line",
		"daemon stderr line",
		"detached=true env-passed=true env-left-for-children=false pipe-close-on-exec=true",
	} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("error_log lacks %q; it holds:\n%s", want, logText)
		}
	}
	// Start returns on the report; the daemon closes the pipe just after.
	pipe := reportPipeOf(t, string(logText))
	for deadline := time.Now().Add(5 * time.Second); holdsFile(pid, pipe); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("daemon still holds its report pipe %s 5s after Ready", pipe)
			break
		}
	}
	if info, err := os.Stat(logPath); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("error_log mode = %v, %v; want 0640", info.Mode(), err)
	}
}

// TestStartReadyWhilePipeShared: a process the daemon started before it
// took its report pipe over keeps a copy open, so the pipe never reaches
// end of file; the ready report must still be taken.
func TestStartReadyWhilePipeShared(t *testing.T) {
	const timeout = 30 * time.Second
	pid, err := startRole(context.Background(), "ready-pipe-shared", filepath.Join(t.TempDir(), "error.log"), timeout)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopDaemon(t, pid)
}

// TestStartFailures covers every way a daemon can fail to start, and
// checks that Start's error says why and that no daemon is left running.
func TestStartFailures(t *testing.T) {
	const earlier = "line from an earlier run"
	tests := []struct {
		name      string
		role      string
		noLog     bool
		timeout   time.Duration
		wantErr   error
		wantIn    []string
		minElapse time.Duration // the wait Start must have made
	}{
		{name: "reports failure", role: "fail", timeout: 30 * time.Second,
			wantErr: ErrStartFailed, wantIn: []string{"daemon failed to start: " + failReason}},
		// The daemon must report (or close its pipe) within the timeout
		// before Start can wait it out: 5 s leaves a loaded machine room
		// to start it.
		{name: "reports failure and lingers", role: "fail-linger", timeout: 5 * time.Second,
			wantErr: ErrStartFailed, wantIn: []string{failReason}, minElapse: 5 * time.Second},
		{name: "exits without a word", role: "exit", timeout: 30 * time.Second,
			wantErr: ErrExited, wantIn: []string{"exit status 3", "last lines of", "daemon: cannot go on"}},
		{name: "exits without a word or error_log", role: "exit", noLog: true, timeout: 30 * time.Second,
			wantErr: ErrExited, wantIn: []string{"exit status 3", "discarded because error_log is not set"}},
		{name: "closes its pipe and lives on", role: "close", timeout: 5 * time.Second,
			wantErr: ErrExited, wantIn: []string{"closed its report pipe, then was killed", "signal: killed"}, minElapse: 5 * time.Second},
		{name: "hangs", role: "hang", timeout: time.Second,
			wantErr: ErrReadyTimeout, wantIn: []string{"said nothing within 1s and was killed (signal: killed)", "wrote nothing to"}, minElapse: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logPath := ""
			if !tt.noLog {
				logPath = filepath.Join(t.TempDir(), "error.log")
				if err := os.WriteFile(logPath, []byte(earlier+"\n"), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			began := time.Now()
			pid, err := startRole(context.Background(), tt.role, logPath, tt.timeout)
			elapsed := time.Since(began)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start = %d, %v; want an error wrapping %v", pid, err, tt.wantErr)
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), earlier) {
				t.Errorf("error quotes a line the daemon did not write:\n%v", err)
			}
			if elapsed < tt.minElapse {
				t.Errorf("Start returned after %v, before the %v it had to wait", elapsed, tt.minElapse)
			}
			if pid <= 0 {
				t.Fatalf("Start returned pid %d", pid)
			}
			if pidAlive(pid) {
				t.Errorf("daemon %d is still running after Start failed", pid)
				unix.Kill(pid, unix.SIGKILL)
			}
		})
	}
}

// TestStartKillsWholeDaemon: when a daemon that started a process of its
// own times out, that process is killed with it.
func TestStartKillsWholeDaemon(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "error.log")
	_, err := startRole(context.Background(), "hang-with-child", logPath, time.Second)
	if !errors.Is(err, ErrReadyTimeout) {
		t.Fatalf("Start = %v, want ErrReadyTimeout", err)
	}
	_, after, found := strings.Cut(err.Error(), "started pid ")
	child, convErr := strconv.Atoi(strings.Fields(after + " ")[0])
	if !found || convErr != nil {
		t.Fatalf("the error does not quote the daemon's child's pid:\n%v", err)
	}
	// The child was killed; its reaping by init is not instant.
	for deadline := time.Now().Add(5 * time.Second); pidAlive(child); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			unix.Kill(child, unix.SIGKILL)
			t.Fatalf("the daemon's child %d outlived the failed start", child)
		}
	}
}

// TestStartContextEnds checks that a cancelled wait kills the daemon.
func TestStartContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	pid, err := startRole(ctx, "hang", "", time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Start = %v; want context.DeadlineExceeded and the daemon killed", err)
	}
	if pidAlive(pid) {
		t.Errorf("daemon %d is still running", pid)
		unix.Kill(pid, unix.SIGKILL)
	}
}

// TestStartErrorLogUnusable checks that Start fails, naming the file,
// before starting anything when error_log cannot be opened.
func TestStartErrorLogUnusable(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "missing-dir", "error.log")
	_, err := startRole(context.Background(), "ready", logPath, time.Second)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), logPath) {
		t.Fatalf("Start = %v; want a not-exist error naming %s", err, logPath)
	}
}

// reportPipeOf returns the report pipe the ready role logged, as
// /proc/PID/fd links name it ("pipe:[inode]").
func reportPipeOf(t *testing.T, logText string) string {
	t.Helper()
	_, after, found := strings.Cut(logText, "report-pipe=")
	pipe, _, _ := strings.Cut(after, "\n")
	if !found || !strings.HasPrefix(pipe, "pipe:[") {
		t.Fatalf("the daemon did not log its report pipe:\n%s", logText)
	}
	return pipe
}

// holdsFile reports whether process pid has a descriptor open on the
// file /proc names link.
func holdsFile(pid int, link string) bool {
	fds, _ := filepath.Glob(filepath.Join("/proc", itoa(pid), "fd", "*"))
	for _, fd := range fds {
		if got, err := os.Readlink(fd); err == nil && got == link {
			return true
		}
	}
	return false
}
