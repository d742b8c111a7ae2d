package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// weirProc is a weir process the test started (the test binary running
// main, see TestMain).
type weirProc struct {
	cmd    *exec.Cmd
	exited chan error
}

func startWeir(t testing.TB, log weirLog, args ...string) *weirProc {
	t.Helper()
	return runWeir(t, exec.Command(os.Args[0], args...), log)
}

// runWeir starts cmd, which runs this test binary as weir, logging to log;
// the process is killed when the test ends.
func runWeir(t testing.TB, cmd *exec.Cmd, log weirLog) *weirProc {
	t.Helper()
	cmd.Env = append(os.Environ(), "WEIR_TEST_RUN_MAIN=1")
	cmd.Stdout, cmd.Stderr = log.File, log.File
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &weirProc{cmd: cmd, exited: make(chan error, 1)}
	go func() { w.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return w
}

func (w *weirProc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to weir %d: %v", sig, w.cmd.Process.Pid, err)
	}
}

func (w *weirProc) waitExit(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case err := <-w.exited:
		return err
	case <-time.After(within):
		t.Fatalf("weir %d did not exit within %v", w.cmd.Process.Pid, within)
		return nil
	}
}

// upgradeLab is a weir configuration for the upgrade tests: an
// http_proxy on a fixed loopback port in front of two respond backends,
// all in the one weir that is upgraded, so every socket changes hands.
type upgradeLab struct {
	dir, conf, pidFile, addr string
	backends                 [2]string
	// pinPath is the configuration's bpf.pin_path; empty keeps the
	// default.
	pinPath string
	// bin and cred are how lab.start runs weir: this test binary as root,
	// or (unprivileged) a copy anyone may run, as cred.
	bin  string
	cred *syscall.Credential
}

func newUpgradeLab(t testing.TB) *upgradeLab {
	t.Helper()
	dir := t.TempDir() // mode 0700: a safe home for upgrade_sock
	l := &upgradeLab{dir: dir, conf: filepath.Join(dir, "weir.yaml"), pidFile: filepath.Join(dir, "weir.pid"), bin: os.Args[0]}
	var ports [3]string
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().String()
		ln.Close()
	}
	l.addr, l.backends = ports[0], [2]string{ports[1], ports[2]}
	if os.Geteuid() == 0 {
		// Steering pins go to a private bpffs, gone with the test even
		// when a weir of it was killed.
		l.pinPath = filepath.Join(testenv.BPFFS(t), "weir")
	}
	l.write(t, 2, "")
	return l
}

// write rewrites the configuration with threads and extra YAML appended
// to the services.
func (l *upgradeLab) write(t testing.TB, threads int, extra string) {
	t.Helper()
	bpf := ""
	if l.pinPath != "" {
		bpf = fmt.Sprintf("bpf: {pin_path: %s}", l.pinPath)
	}
	conf := fmt.Sprintf(`version: 1
%s
threads: %d
pid_file: %s
upgrade_sock: %s
grace_period_seconds: 5
graceful_shutdown_timeout_seconds: 5
services:
  - {name: a, kind: respond, body: "a", listen: ["%s"]}
  - {name: b, kind: respond, body: "b", listen: ["%s"]}
  - name: lb
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s", "%s"]
      health_check: {type: tcp, interval: 1s}
%s`, bpf, threads, l.pidFile, filepath.Join(l.dir, "upgrade.sock"), l.backends[0], l.backends[1], l.addr, l.backends[0], l.backends[1], extra)
	if err := os.WriteFile(l.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs weir with args as the lab says: as root, or unprivileged.
func (l *upgradeLab) start(t testing.TB, log weirLog, args ...string) *weirProc {
	t.Helper()
	cmd := exec.Command(l.bin, args...)
	if l.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: l.cred}
	}
	return runWeir(t, cmd, log)
}

// unprivileged makes the lab run weir as nobody (65534): a copy of the
// test binary it may run, and the lab directory its own (mode 0700, as
// upgrade_sock wants), reachable through a parent it may traverse.
func (l *upgradeLab) unprivileged(t testing.TB) {
	t.Helper()
	const nobody = 65534
	bin := filepath.Join(l.dir, "weir")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{l.dir, l.conf, bin} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(l.dir), 0o711); err != nil {
		t.Fatal(err)
	}
	l.bin, l.cred = bin, &syscall.Credential{Uid: nobody, Gid: nobody}
}

// listening counts the sockets listening on the lab's address: a
// listener's SO_REUSEPORT group, as /proc/net/tcp shows it.
func (l *upgradeLab) listening(t testing.TB) int {
	t.Helper()
	ap := netip.MustParseAddrPort(l.addr)
	ip := ap.Addr().As4()
	// /proc/net/tcp writes the address as a little-endian word.
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == local && f[3] == "0A" { // TCP_LISTEN
			n++
		}
	}
	return n
}

// waitPIDFile polls until the pid file names pid.
func (l *upgradeLab) waitPIDFile(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if l.pid() == pid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file %s names %d, want %d", l.pidFile, l.pid(), pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *upgradeLab) pid() int {
	b, err := os.ReadFile(l.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// loadResult counts what the clients saw.
type loadResult struct {
	ok, failed, resets, timeouts, retried atomic.Int64
	mu                                    sync.Mutex
	errs                                  []string
	wait                                  func() // returns once every client stopped
}

func (r *loadResult) fail(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		r.resets.Add(1)
	case errors.As(err, &ne) && ne.Timeout():
		r.timeouts.Add(1)
	default:
		r.failed.Add(1)
	}
	r.mu.Lock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, err.Error())
	}
	r.mu.Unlock()
}

// load drives requests at addr until stop is closed, from keepAlive
// clients that reuse their connection and fresh clients that open one
// per request, and checks every response body.
func load(addr string, keepAlive, fresh int, stop <-chan struct{}) *loadResult {
	r := &loadResult{}
	var wg sync.WaitGroup
	for range keepAlive {
		wg.Go(func() { keepAliveClient(addr, r, stop) })
	}
	for range fresh {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					r.fail(err)
					continue
				}
				if _, err := exchange(c, bufio.NewReader(c), true); err != nil {
					r.fail(err)
				} else {
					r.ok.Add(1)
				}
				c.Close()
			}
		})
	}
	r.wait = wg.Wait
	return r
}

// exchange sends one GET and reads the response, which must be a 200
// from backend a or b. It reports whether the server will close.
func exchange(c net.Conn, br *bufio.Reader, closeConn bool) (bool, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
	if closeConn {
		req = "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	if resp.StatusCode != 200 || (string(body) != "a" && string(body) != "b") {
		return false, fmt.Errorf("status %d body %q", resp.StatusCode, body)
	}
	return resp.Close, nil
}

// keepAliveClient reuses one connection until the server says it closes
// it. A request on a reused connection that meets an orderly close
// before any byte of response was not processed (RFC 9112 §9.3.1): it is
// retried on a new connection and counted, like every client does.
func keepAliveClient(addr string, r *loadResult, stop <-chan struct{}) {
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	reused := false
	for {
		select {
		case <-stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				r.fail(err)
				c = nil
				continue
			}
			br, reused = bufio.NewReader(c), false
		}
		closing, err := exchange(c, br, false)
		switch {
		case err == nil:
			r.ok.Add(1)
			reused = true
		case reused && errors.Is(err, io.EOF):
			r.retried.Add(1)
		default:
			r.fail(err)
		}
		if err != nil || closing {
			c.Close()
			c = nil
		}
	}
}

func (r *loadResult) check(t *testing.T, elapsed time.Duration) {
	t.Helper()
	total := r.ok.Load() + r.failed.Load() + r.resets.Load() + r.timeouts.Load()
	rate := float64(r.ok.Load()) / elapsed.Seconds()
	t.Logf("%d requests in %v (%.0f/s): %d failed, %d resets, %d timeouts, %d keep-alive retries",
		total, elapsed.Round(time.Millisecond), rate, r.failed.Load(), r.resets.Load(), r.timeouts.Load(), r.retried.Load())
	if r.failed.Load()+r.resets.Load()+r.timeouts.Load() > 0 {
		t.Errorf("clients saw failures; first errors: %q", r.errs)
	}
	if r.ok.Load() == 0 {
		t.Error("no request succeeded: the load never ran")
	}
}

// waitServing polls until addr answers a request.
func waitServing(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_, err = exchange(c, bufio.NewReader(c), true)
			c.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir does not serve %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpgradesUnderLoadLoseNothing is issue 5's proof: 20 consecutive
// upgrades of a loaded weir, in both orders (new process first, SIGQUIT
// first), with threads changing and a SIGHUP reload among them, and not
// one request may fail, be reset or time out.
//
// As root each listener is a SO_REUSEPORT group of `threads` sockets
// steered by BPF, so the upgrades also grow and shrink the groups; as
// nobody there is one socket a listener, handed over as it is.
func TestUpgradesUnderLoadLoseNothing(t *testing.T) {
	testenv.NeedRoot(t)
	t.Run("root", func(t *testing.T) {
		lab := newUpgradeLab(t)
		testUpgradesUnderLoad(t, lab, func(threads int) int { return threads })
	})
	t.Run("unprivileged", func(t *testing.T) {
		lab := newUpgradeLab(t)
		lab.unprivileged(t)
		testUpgradesUnderLoad(t, lab, func(int) int { return 1 })
	})
}

// testUpgradesUnderLoad runs the 20 upgrades; sockets says how many
// sockets a listener has with a given threads.
func testUpgradesUnderLoad(t *testing.T, lab *upgradeLab, sockets func(threads int) int) {
	lab.write(t, 2, "")
	logs := logFile(t)
	cur := lab.start(t, logs, "-c", lab.conf)
	lab.waitPIDFile(t, cur.cmd.Process.Pid)
	waitServing(t, lab.addr)

	stop := make(chan struct{})
	start := time.Now()
	res := load(lab.addr, 8, 4, stop)
	threads := []int{4, 1, 3, 2}
	// Steps 12 and 13 add a listener on another port and remove it again:
	// the reload that drops one listener keeps the others serving.
	extraAddr := freeAddr(t)
	extra := fmt.Sprintf("  - {name: c, kind: respond, body: \"c\", listen: [\"%s\"]}\n", extraAddr)
	for step := range 20 {
		conf := ""
		if step == 12 {
			conf = extra
		}
		lab.write(t, threads[step%len(threads)], conf)
		var next int
		switch {
		case step == 9: // a reload: weir starts its successor itself
			cur.signal(t, syscall.SIGHUP)
		case step%2 == 0: // the new process first, then SIGQUIT
			w := lab.start(t, logs, "-u", "-c", lab.conf)
			next = w.cmd.Process.Pid
			cur.signal(t, syscall.SIGQUIT)
			old := cur
			cur = w
			if err := old.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("step %d: the old weir exited with %v\n%s", step, err, logs)
			}
		default: // SIGQUIT first: the old weir retries until the new one listens
			cur.signal(t, syscall.SIGQUIT)
			w := lab.start(t, logs, "-u", "-c", lab.conf)
			next = w.cmd.Process.Pid
			old := cur
			cur = w
			if err := old.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("step %d: the old weir exited with %v\n%s", step, err, logs)
			}
		}
		if step == 9 {
			cur = lab.followReload(t, cur, logs)
			if got, want := lab.listening(t), sockets(threads[step%len(threads)]); got != want {
				t.Fatalf("reload: %d sockets listen on %s, want %d\n%s", got, lab.addr, want, logs)
			}
			continue
		}
		lab.waitPIDFile(t, next)
		if got, want := lab.listening(t), sockets(threads[step%len(threads)]); got != want {
			t.Fatalf("step %d: %d sockets listen on %s, want %d\n%s", step, got, lab.addr, want, logs)
		}
		checkExtraListener(t, step, extraAddr, step == 12)
	}
	// The last successor serves under load too before the clients stop.
	for until, deadline := res.ok.Load()+500, time.Now().Add(10*time.Second); res.ok.Load() < until; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the last weir served fewer than 500 requests in 10s")
		}
	}
	close(stop)
	res.wait()
	res.check(t, time.Since(start))
	if rate := float64(res.ok.Load()) / time.Since(start).Seconds(); rate < 2000 {
		t.Logf("note: the load ran at %.0f requests/s, below the 2,000/s the issue asks for (race detector, shared CPU)", rate)
	}
	cur.signal(t, syscall.SIGTERM)
	if err := cur.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the last weir exited with %v", err)
	}
}

// checkExtraListener checks that addr serves exactly while the
// configuration has it.
func checkExtraListener(t *testing.T, step int, addr string, configured bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if !configured {
		if err == nil {
			c.Close()
			t.Fatalf("step %d: %s still accepts after its listener left the configuration", step, addr)
		}
		return
	}
	if err != nil {
		t.Fatalf("step %d: the added listener %s: %v", step, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("step %d: request to the added listener %s: %v", step, addr, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "c" {
		t.Fatalf("step %d: the added listener %s answered %d %q (%v), want 200 \"c\"", step, addr, resp.StatusCode, body, err)
	}
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// followReload waits for old, which got SIGHUP, to hand over to the weir
// it started itself and exit, and returns that successor. It is not our
// child: it is found by the pid file, and killed when the test ends.
func (l *upgradeLab) followReload(t *testing.T, old *weirProc, logs weirLog) *weirProc {
	t.Helper()
	if err := old.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("reload: the old weir exited with %v\n%s", err, logs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.pid() == old.cmd.Process.Pid || l.pid() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("reload: the pid file still names %d\n%s", l.pid(), logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	adopted, err := adoptProcess(l.pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adopted.cmd.Process.Kill() })
	return adopted
}

// adoptProcess follows a weir the test did not start (a reload's
// successor): its exit is seen by polling, since only its parent may wait.
func adoptProcess(pid int) (*weirProc, error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	w := &weirProc{cmd: &exec.Cmd{Process: p}, exited: make(chan error, 1)}
	go func() {
		for syscall.Kill(pid, 0) == nil {
			time.Sleep(5 * time.Millisecond)
		}
		w.exited <- nil
	}()
	return w, nil
}

// weirLog is the output of every weir process of a test: a file, not a
// pipe, because a reloaded weir's successor inherits its output, and a
// pipe would keep the parent's Wait waiting for the successor.
type weirLog struct{ *os.File }

func logFile(t testing.TB) weirLog {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "weir.log"), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("weir logs:\n%s", weirLog{f})
		}
		f.Close()
	})
	return weirLog{f}
}

func (l weirLog) String() string {
	b, _ := os.ReadFile(l.Name())
	return string(b)
}

// A new weir that fails after it adopted the sockets (here: an l4
// service that insists on a BPF data plane it cannot have) aborts the
// upgrade; the old weir serves on as if nothing happened, a reload with
// a broken configuration is refused before anything starts, and a good
// upgrade afterwards still works.
func TestFailedUpgradesKeepTheOldWeirServing(t *testing.T) {
	lab := newUpgradeLab(t)
	logs := logFile(t)
	old := startWeir(t, logs, "-c", lab.conf)
	lab.waitPIDFile(t, old.cmd.Process.Pid)
	waitServing(t, lab.addr)
	stop := make(chan struct{})
	start := time.Now()
	res := load(lab.addr, 4, 2, stop)

	notDir := filepath.Join(lab.dir, "not-a-dir")
	os.WriteFile(notDir, nil, 0o600)
	lab.write(t, 2, fmt.Sprintf(`  - {name: vip, kind: l4, protocol: tcp, vip: "127.0.0.1:1", interface: lo, dataplane: bpf, upstream: {backends: ["%s"]}}
bpf: {pin_path: %s}
`, lab.backends[0], filepath.Join(notDir, "weir")))
	failing := startWeir(t, logs, "-u", "-c", lab.conf)
	old.signal(t, syscall.SIGQUIT)
	if err := failing.waitExit(t, 20*time.Second); err == nil {
		t.Fatal("the failing weir exited 0")
	}
	waitLog(t, logs, "upgrade failed; still serving")

	os.WriteFile(lab.conf, []byte("version: 1\nservices: [oops"), 0o644)
	old.signal(t, syscall.SIGHUP)
	waitLog(t, logs, "reload refused")

	select {
	case err := <-old.exited:
		t.Fatalf("the old weir exited (%v) after failed upgrades", err)
	default:
	}
	if pid := lab.pid(); pid != old.cmd.Process.Pid {
		t.Fatalf("pid file names %d, want the old weir %d", pid, old.cmd.Process.Pid)
	}

	lab.write(t, 2, "")
	next := startWeir(t, logs, "-u", "-c", lab.conf)
	old.signal(t, syscall.SIGQUIT)
	if err := old.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the old weir exited with %v", err)
	}
	lab.waitPIDFile(t, next.cmd.Process.Pid)
	close(stop)
	res.wait()
	res.check(t, time.Since(start))
	next.signal(t, syscall.SIGTERM)
	next.waitExit(t, 20*time.Second)
}

// waitLog polls the weir log until it contains text.
func waitLog(t *testing.T, logs weirLog, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the weir log does not say %q within 20s", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// weir -d returns only once the daemon serves, and a daemon that cannot
// start makes -d fail with the daemon's own error.
func TestDaemonReturnsOnceServing(t *testing.T) {
	lab := newUpgradeLab(t)
	logs := logFile(t)
	d := startWeir(t, logs, "-d", "-c", lab.conf)
	if err := d.waitExit(t, 30*time.Second); err != nil {
		t.Fatalf("weir -d exited with %v", err)
	}
	pid := lab.pid()
	if pid <= 0 {
		t.Fatal("weir -d returned without a pid file")
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// Serving already: no waiting, no retry.
	c, err := net.Dial("tcp", lab.addr)
	if err != nil {
		t.Fatalf("weir -d returned but %s refuses: %v", lab.addr, err)
	}
	if _, err := exchange(c, bufio.NewReader(c), true); err != nil {
		t.Fatalf("first request to the daemon: %v", err)
	}
	c.Close()
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Fatalf("daemon %d has session %d (%v), want its own", pid, sid, err)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("daemon serving, pid %d", pid)) {
		t.Fatalf("weir -d did not print the daemon's pid:\n%s", logs)
	}

	// A second daemon on the same ports cannot bind.
	other := newUpgradeLab(t)
	other.addr = lab.addr
	other.write(t, 1, "")
	failed := startWeir(t, logs, "-d", "-c", other.conf)
	if err := failed.waitExit(t, 30*time.Second); err == nil {
		t.Fatal("weir -d exited 0 for a daemon that cannot bind")
	}
	if !strings.Contains(logs.String(), "address already in use") {
		t.Fatalf("weir -d did not relay the daemon's error:\n%s", logs)
	}

	syscall.Kill(pid, syscall.SIGTERM)
	adopted, _ := adoptProcess(pid)
	adopted.waitExit(t, 20*time.Second)
	if _, err := os.Stat(lab.pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left after a clean exit: %v", err)
	}
}
