package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the processes the tests start: with roleEnv
// set it plays that role instead of running tests. Start re-executes it
// as a daemon, and privilege tests run it as a child so that the test
// process itself stays root.
const (
	roleEnv = "WEIR_DAEMON_TEST_ROLE"
	// userEnv, groupEnv and preDropEnv parameterise the privilege roles.
	userEnv    = "WEIR_DAEMON_TEST_USER"
	groupEnv   = "WEIR_DAEMON_TEST_GROUP"
	preDropEnv = "WEIR_DAEMON_TEST_PREDROP_USER"
	// childLifetime bounds how long a role lingers, should the test that
	// started it die without stopping it.
	childLifetime = 2 * time.Minute
	// failReason is what the failing daemon roles report.
	failReason = "service \"lb\": listen on 192.0.2.1:80: bind: address already in use"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(playRole(role))
	}
	os.Exit(m.Run())
}

// roleEnviron is the environment of a child playing role: this
// process's, the role, and no one-second pause at exit under the race
// detector (its atexit_sleep_ms), which would only slow the tests.
func roleEnviron(role string, extra ...string) []string {
	env := append(os.Environ(), roleEnv+"="+role, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, extra...)
}

// playRole runs one child role and returns its exit code.
func playRole(role string) int {
	switch role {
	case "ready":
		return roleReady(false)
	case "ready-pipe-shared":
		return roleReady(true)
	case "sleep":
		time.Sleep(childLifetime)
		return 0
	case "fail":
		return roleFail(false)
	case "fail-linger":
		return roleFail(true)
	case "exit":
		return roleExit()
	case "close":
		return roleClose()
	case "hang":
		return roleHang(false)
	case "hang-with-child":
		return roleHang(true)
	case "drop":
		return roleDrop()
	case "bpf":
		return roleBPF()
	}
	fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
	return 2
}

// roleReady is a daemon that starts well: it describes its environment
// on standard output, reports ready, and serves until SIGTERM. With
// sharePipe, it first starts a process that inherits its report pipe and
// outlives the report, as one started before FromEnv would.
func roleReady(sharePipe bool) int {
	if sharePipe {
		holder := exec.Command(os.Args[0], "-test.run=^$")
		holder.Env = roleEnviron("sleep")
		if err := holder.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer holder.Wait()
		defer holder.Process.Kill()
	}
	_, passed := os.LookupEnv(ReadyFDEnv)
	n, err := FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, leaked := os.LookupEnv(ReadyFDEnv)
	flags, err := unix.FcntlInt(reportFD, unix.F_GETFD, 0)
	cloexec := err == nil && flags&unix.FD_CLOEXEC != 0
	pipe, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", reportFD))
	fmt.Printf("report-pipe=%s\n", pipe)
	fmt.Println("daemon stdout line")
	fmt.Fprintln(os.Stderr, "daemon stderr line")
	fmt.Printf("detached=%v env-passed=%v env-left-for-children=%v pipe-close-on-exec=%v\n", n.Detached(), passed, leaked, cloexec)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	if err := n.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {
	case <-stop:
		return 0
	case <-time.After(childLifetime):
		return 1
	}
}

// roleFail is a daemon that reports a start-up error and exits, or, when
// linger is set, stays on.
func roleFail(linger bool) int {
	n, _ := FromEnv()
	n.Fail(errors.New(failReason))
	if linger {
		time.Sleep(childLifetime)
	}
	return 1
}

// roleExit is a daemon that dies without reporting.
func roleExit() int {
	FromEnv()
	fmt.Fprintln(os.Stderr, "daemon: cannot go on")
	return 3
}

// roleClose closes its report pipe without a word and lives on.
func roleClose() int {
	n, _ := FromEnv()
	n.Close()
	time.Sleep(childLifetime)
	return 0
}

// roleHang never reports. With child, it first starts a process of its
// own, and logs that process's pid.
func roleHang(child bool) int {
	FromEnv()
	if child {
		sleeper := exec.Command(os.Args[0], "-test.run=^$")
		sleeper.Env = roleEnviron("sleep")
		if err := sleeper.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "started pid %d\n", sleeper.Process.Pid)
	}
	time.Sleep(childLifetime)
	return 0
}

// identityReport is what the privilege roles print, as JSON, for the
// test to check.
type identityReport struct {
	Err          string   `json:"err,omitempty"`
	UID          [3]int   `json:"uid"`
	GID          [3]int   `json:"gid"`
	Groups       []int    `json:"groups"`
	Threads      []string `json:"threads"`     // "Uid: ..." and "Gid: ..." lines of every thread
	RegainRoot   string   `json:"regain_root"` // the error of setuid(0) afterwards
	MapUpdate    string   `json:"map_update"`  // bpf role: updating the inherited map
	ProgLoad     string   `json:"prog_load"`   // bpf role: loading a tc program
	ProgLoadPerm bool     `json:"prog_load_eperm"`
}

// roleDrop drops privileges to userEnv and groupEnv, from a process with
// several OS threads, after dropping to preDropEnv first if set, and
// reports the identity of every thread.
func roleDrop() int {
	release := holdThreads(4)
	defer release()
	var rep identityReport
	if pre := os.Getenv(preDropEnv); pre != "" {
		if err := DropPrivileges(pre, ""); err != nil {
			rep.Err = "pre-drop: " + err.Error()
			return printReport(rep)
		}
	}
	if err := DropPrivileges(os.Getenv(userEnv), os.Getenv(groupEnv)); err != nil {
		rep.Err = err.Error()
	}
	fillIdentity(&rep)
	return printReport(rep)
}

// roleBPF drops root, then updates the BPF array map inherited as
// descriptor 3 (key 0 := 42) and tries to load a tc program.
func roleBPF() int {
	var rep identityReport
	if err := DropPrivileges("nobody", ""); err != nil {
		rep.Err = err.Error()
		return printReport(rep)
	}
	fillIdentity(&rep)
	m, err := ebpf.NewMapFromFD(3)
	if err == nil {
		err = m.Update(uint32(0), uint32(42), ebpf.UpdateAny)
	}
	rep.MapUpdate = errString(err)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err == nil {
		prog.Close()
	}
	rep.ProgLoad = errString(err)
	rep.ProgLoadPerm = errors.Is(err, unix.EPERM)
	return printReport(rep)
}

// holdThreads parks n goroutines on OS threads of their own, so that the
// process has threads besides the one that changes its identity.
func holdThreads(n int) (release func()) {
	done := make(chan struct{})
	started := make(chan struct{}, n)
	for range n {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started <- struct{}{}
			<-done
		}()
	}
	for range n {
		<-started
	}
	return func() { close(done) }
}

// fillIdentity records the process's identity and every thread's.
func fillIdentity(rep *identityReport) {
	rep.UID[0], rep.UID[1], rep.UID[2] = unix.Getresuid()
	rep.GID[0], rep.GID[1], rep.GID[2] = unix.Getresgid()
	rep.Groups, _ = unix.Getgroups()
	rep.Threads = threadIdentities()
	rep.RegainRoot = errString(syscall.Setuid(0))
}

// threadIdentities returns the Uid and Gid lines of every thread's
// status, as "tid Uid: r e s fs".
func threadIdentities() []string {
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	var out []string
	for _, status := range tasks {
		data, err := os.ReadFile(status)
		if err != nil {
			continue // the thread exited
		}
		tid := filepath.Base(filepath.Dir(status))
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") {
				out = append(out, tid+" "+strings.Join(strings.Fields(line), " "))
			}
		}
	}
	return out
}

func printReport(rep identityReport) int {
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// pidAlive reports whether a process with pid exists and has not ended
// (a zombie has).
func pidAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, fields, _ := strings.Cut(string(stat), ") ")
	return fields != "" && fields[0] != 'Z' && fields[0] != 'X'
}

// itoa shortens strconv.Itoa in expectations.
func itoa(n int) string { return strconv.Itoa(n) }
