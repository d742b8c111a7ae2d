package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/bgp"
)

// The BGP lab: weir in one network namespace, BIRD in another, joined by
// a veth pair on 198.51.100.0/24; the VIP 192.0.2.10 is on weir's
// loopback, its backends listen on loopback in weir's namespace.
const (
	bgpWeirAddr = "198.51.100.1"
	bgpBIRDAddr = "198.51.100.2"
	bgpVIP      = "192.0.2.10"
	bgpConverge = 2 * time.Second
	bgpInterval = 200 * time.Millisecond
)

var bgpVIPRoute = netip.MustParsePrefix(bgpVIP + "/32")

// bgpBackend is a TCP backend in a namespace that can be stopped and
// started again on the same address. It greets each connection with a
// line naming itself, then echoes what it reads until the client closes.
type bgpBackend struct {
	t    *testing.T
	ns   netns.NsHandle
	addr string
	ln   net.Listener
}

func (b *bgpBackend) start() {
	b.t.Helper()
	err := testenv.InNetns(b.ns, func() error {
		ln, err := net.Listen("tcp", b.addr)
		b.ln = ln
		return err
	})
	if err != nil {
		b.t.Fatal(err)
	}
	ln := b.ln
	b.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "hello from "+b.addr+"\n")
				io.Copy(c, c)
			}()
		}
	}()
}

func (b *bgpBackend) stop() { b.ln.Close() }

// ipCmd runs ip with args, failing the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// bgpLab is the BGP lab with weir running in it.
type bgpLab struct {
	bird      *testenv.BIRD
	backends  []*bgpBackend
	adminSock string
	pidFile   string
	conf      string
	weirNS    string         // its name, for ip netns exec
	ns        netns.NsHandle // the same namespace, for testenv.InNetns
	logs      weirLog
	weir      *weirProc
}

// bgpRestartTime is the graceful restart time of the lab with graceful
// restart: weir's graceful_restart, which BIRD's "graceful restart on"
// honours.
const bgpRestartTime = 30 * time.Second

// bgpLabOptions vary the BGP lab.
type bgpLabOptions struct {
	gracefulRestart bool          // on at both BIRD and weir
	interval        time.Duration // the health checks' (0: bgpInterval)
	// failures is the health checks' consecutive_failure, and timeout
	// their timeout (0: 1 and 100ms, quick to find a real loss; a lab
	// under load needs more, or a check starved of CPU fails).
	failures int
	timeout  time.Duration
}

// startBGPLab builds the BGP lab, starts BIRD and the backends, and runs
// weir with the vip announced.
func startBGPLab(t *testing.T, opts bgpLabOptions) *bgpLab {
	if opts.interval == 0 {
		opts.interval = bgpInterval
	}
	if opts.failures == 0 {
		opts.failures = 1
	}
	if opts.timeout == 0 {
		opts.timeout = 100 * time.Millisecond
	}
	testenv.NeedRoot(t)
	weirNS, birdNS := testNetns(t), testNetns(t)
	ipCmd(t, "link", "add", "weir0", "netns", weirNS, "type", "veth", "peer", "name", "bird0", "netns", birdNS)
	ipCmd(t, "-n", weirNS, "addr", "add", bgpWeirAddr+"/24", "dev", "weir0")
	ipCmd(t, "-n", weirNS, "link", "set", "weir0", "up")
	ipCmd(t, "-n", weirNS, "addr", "add", bgpVIP+"/32", "dev", "lo")
	ipCmd(t, "-n", birdNS, "addr", "add", bgpBIRDAddr+"/24", "dev", "bird0")
	ipCmd(t, "-n", birdNS, "link", "set", "bird0", "up")

	birdHandle, err := netns.GetFromName(birdNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { birdHandle.Close() })
	birdGR, weirGR := "", ""
	if opts.gracefulRestart {
		birdGR, weirGR = "graceful restart on;", fmt.Sprintf("graceful_restart: %v", bgpRestartTime)
	}
	bird := testenv.StartBIRD(t, birdHandle, fmt.Sprintf(`router id %s;
debug protocols { states, routes, events };
protocol device { }
protocol bgp weir {
	local %s as 64496;
	neighbor %s as 64497;
	passive on;
	hold time 9;
	%s
	ipv4 { import all; export none; };
}
`, bgpBIRDAddr, bgpBIRDAddr, bgpWeirAddr, birdGR))

	ns, err := netns.GetFromName(weirNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	backends := []*bgpBackend{{t: t, ns: ns, addr: "127.0.0.1:9001"}, {t: t, ns: ns, addr: "127.0.0.1:9002"}}
	for _, b := range backends {
		b.start()
	}

	dir := t.TempDir()
	adminSock := filepath.Join(dir, "admin.sock")
	conf := filepath.Join(dir, "weir.yaml")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`version: 1
pid_file: %s
upgrade_sock: %s
admin: {listen: ["unix:%s"]}
bgp:
  asn: 64497
  router_id: %s
  converge: %v
  %s
  peers: [{address: %s, asn: 64496, hold_time: 9s, local_address: %s}]
services:
  - name: web
    kind: l4
    protocol: tcp
    vip: "%s:80"
    dataplane: userspace
    announce: {communities: ["64497:100", no-export]}
    upstream:
      backends: ["127.0.0.1:9001", "127.0.0.1:9002"]
      health_check: {type: tcp, interval: %v, timeout: %v, consecutive_failure: %d, consecutive_success: 1}
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), adminSock, bgpWeirAddr, bgpConverge, weirGR,
		bgpBIRDAddr, bgpWeirAddr, bgpVIP, opts.interval, opts.timeout, opts.failures)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logs := logFile(t)
	w := runWeir(t, exec.Command("ip", "netns", "exec", weirNS, os.Args[0], "-c", conf), logs)
	return &bgpLab{bird: bird, backends: backends, adminSock: adminSock, pidFile: filepath.Join(dir, "weir.pid"), conf: conf,
		weirNS: weirNS, ns: ns, logs: logs, weir: w}
}

// announced waits until BIRD has the vip's /32 from weir with the
// configured communities.
func (l *bgpLab) announced(t *testing.T, what string, within time.Duration) {
	t.Helper()
	l.bird.Eventually(within, what, func() (bool, string) {
		r := l.bird.Route(bgpVIPRoute)
		return strings.Contains(r, "via "+bgpWeirAddr+" on bird0") && strings.Contains(r, "BGP.community: (64497,100) (65535,65281)") &&
			strings.Contains(r, "BGP.as_path: 64497"), r
	})
}

// withdrawn waits until BIRD has no route to the vip.
func (l *bgpLab) withdrawn(t *testing.T, what string, within time.Duration) {
	t.Helper()
	l.bird.Eventually(within, what, func() (bool, string) {
		r := l.bird.Route(bgpVIPRoute)
		return r == "", r
	})
}

// TestBGPAnnouncesVIPToBIRD runs weir with an l4 VIP announced by BGP to a
// real BIRD 2: the /32 reaches BIRD's table with the configured
// communities once weir serves; it is withdrawn when the backends fail
// their health checks and comes back when they recover; weir status and
// the metrics say so; and SIGTERM withdraws it while the session is still
// up, then weir exits once the converge time has passed.
func TestBGPAnnouncesVIPToBIRD(t *testing.T) {
	l := startBGPLab(t, bgpLabOptions{})
	bird, backends, adminSock, logs, w := l.bird, l.backends, l.adminSock, l.logs, l.weir

	announced := func(what string, within time.Duration) { t.Helper(); l.announced(t, what, within) }
	withdrawn := func(what string, within time.Duration) { t.Helper(); l.withdrawn(t, what, within) }
	// The first attempt comes within 2 s of the start, and the route
	// once weir serves.
	announced("the vip's /32 in BIRD's table with the communities", 15*time.Second)

	status := weirStatus(t, adminSock)
	for _, want := range []string{
		bgpBIRDAddr + " 64496 established",
		bgpVIP + " announced web 2/1 64497:100 no-export 1 0",
	} {
		if !hasFieldsLine(status, want) {
			t.Errorf("weir status lacks a line %q:\n%s", want, status)
		}
	}
	metrics := adminMetrics(t, adminSock)
	for _, want := range []string{
		`weir_bgp_vip_announced{vip="192.0.2.10"} 1`,
		`weir_bgp_announcements_total{vip="192.0.2.10"} 1`,
		`weir_bgp_withdrawals_total{vip="192.0.2.10"} 0`,
		`weir_bgp_peer_up{peer="198.51.100.2"} 1`,
		`weir_bgp_peer_state{peer="198.51.100.2",state="established"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, strings.Join(grepLines(metrics, "weir_bgp_"), "\n"))
		}
	}

	// Every backend fails its checks: the route goes within about a
	// second plus the check interval.
	for _, b := range backends {
		b.stop()
	}
	withdrawn("the vip withdrawn once its backends fail their checks", time.Second+bgpInterval+500*time.Millisecond)
	for _, b := range backends {
		b.start()
	}
	announced("the vip announced again once its backends recover", time.Second+bgpInterval+500*time.Millisecond)
	metrics = adminMetrics(t, adminSock)
	for _, want := range []string{`weir_bgp_announcements_total{vip="192.0.2.10"} 2`, `weir_bgp_withdrawals_total{vip="192.0.2.10"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, strings.Join(grepLines(metrics, "weir_bgp_"), "\n"))
		}
	}

	// SIGTERM: the route goes while the session is up; weir exits after
	// the converge time.
	began := time.Now()
	w.signal(t, syscall.SIGTERM)
	bird.Eventually(time.Second, "the vip withdrawn with the session still up", func() (bool, string) {
		r := bird.Route(bgpVIPRoute)
		up, s := bird.Established("weir")
		return r == "" && up, r + s
	})
	if err := w.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("weir exited with %v", err)
	}
	if took := time.Since(began); took < bgpConverge {
		t.Errorf("weir exited %v after SIGTERM, before the converge time %v", took, bgpConverge)
	}
	out := logs.String()
	withdraw := strings.Index(out, `msg="bgp withdraw" prefix=192.0.2.10/32`)
	stopped := strings.Index(out, "every vip was withdrawn from BGP")
	closed := strings.Index(out, `msg="bgp speaker stopped"`)
	if withdraw < 0 || stopped < withdraw || closed < withdraw {
		t.Errorf("log: withdraw at %d, sessions closed at %d, services stopped at %d; want the withdraw first", withdraw, closed, stopped)
	}
}

// weirStatus runs weir status against the admin socket.
func weirStatus(t *testing.T, adminSock string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runStatus([]string{"-admin", "unix:" + adminSock, "-pin", filepath.Join(t.TempDir(), "none")}, &stdout, &stderr); code != 0 {
		t.Fatalf("weir status: exit %d: %s", code, stderr.String())
	}
	return stdout.String()
}

// adminMetrics GETs /metrics from the admin socket.
func adminMetrics(t *testing.T, adminSock string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", adminSock)
	}}}
	resp, err := c.Get("http://weir-admin/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hasFieldsLine reports whether a line of s starts with the fields of
// want, whatever the spaces between them.
func hasFieldsLine(s, want string) bool {
	w := strings.Fields(want)
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) >= len(w) && strings.Join(f[:len(w)], " ") == strings.Join(w, " ") {
			return true
		}
	}
	return false
}

// TestBGPReloadWithoutGracefulRestartReopensSessions reloads weir
// without graceful_restart (SIGHUP: a new process takes the sockets over)
// and measures what the routers see: the old process withdraws the vip
// and closes its session after the converge time; the new one opens its
// own session, whose first attempts the router refuses while the old
// session is up, and announces the vip again. The gap is what README.md,
// "Announcing VIPs by BGP", documents; graceful_restart closes it
// (TestBGPUpgradesKeepTheRoute).
func TestBGPReloadWithoutGracefulRestartReopensSessions(t *testing.T) {
	l := startBGPLab(t, bgpLabOptions{})
	l.announced(t, "the vip's /32 in BIRD's table", 15*time.Second)
	old := l.weir.cmd.Process.Pid
	began := time.Now()
	l.weir.signal(t, syscall.SIGHUP)
	t.Cleanup(func() {
		if pid := readPID(l.pidFile); pid != 0 && pid != old {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	var gone, back time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for back == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the vip was not announced again within 30s of SIGHUP (gone after %v)", gone)
		}
		r := l.bird.Route(bgpVIPRoute)
		switch {
		case r == "" && gone == 0:
			gone = time.Since(began)
		case r != "" && gone != 0:
			back = time.Since(began)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.weir.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the old weir exited with %v", err)
	}
	if pid := readPID(l.pidFile); pid == old || pid == 0 {
		t.Fatalf("pid file names %d after the reload, want the new weir", pid)
	}
	l.announced(t, "the vip announced by the new weir", time.Second)
	t.Logf("after SIGHUP the vip was withdrawn at %v and announced again at %v: %v without a route from this node", gone, back, back-gone)
	// The documented bound: the old weir's converge time, then the new
	// weir's next attempt (every bgp.DefaultConnectRetry), with a second
	// for the handshake and the update.
	if limit := bgpConverge + bgp.DefaultConnectRetry + time.Second; back-gone > limit {
		t.Errorf("the vip was without a route from this node for %v, want at most %v", back-gone, limit)
	}
}

// readPID reads a pid file; 0 when there is none.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// bgpRouteWatch polls BIRD's table for the vip every 20 ms, from its
// start until stop (at most two minutes), and counts the polls that
// found no route.
type bgpRouteWatch struct {
	bird    *testenv.BIRD
	done    chan struct{}
	stopped chan struct{}

	polls, missing int
	firstMissing   time.Time
	errs           []error
}

func watchVIPRoute(bird *testenv.BIRD) *bgpRouteWatch {
	w := &bgpRouteWatch{bird: bird, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
			select {
			case <-w.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			out, err := bird.Birdc("show route " + bgpVIPRoute.String())
			switch {
			case err != nil && !strings.Contains(out, "Network not found"):
				w.errs = append(w.errs, err)
			case !strings.Contains(out, bgpVIPRoute.String()):
				if w.missing == 0 {
					w.firstMissing = time.Now()
				}
				w.missing++
				w.polls++
			default:
				w.polls++
			}
		}
	}()
	return w
}

func (w *bgpRouteWatch) stop() {
	close(w.done)
	<-w.stopped
}

// vipLoad is a bounded client loop: workers, in weir's namespace, each
// open a TCP connection to the vip after the other through weir's
// userspace L4, and check that the backend's greeting and the echo of a
// line come back, until stop (at most two minutes or 200,000
// connections).
type vipLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []error // the first few failures
	wg         sync.WaitGroup
}

func startVIPLoad(ns netns.NsHandle, workers int, stop <-chan struct{}) *vipLoad {
	l := &vipLoad{}
	for w := range workers {
		l.wg.Go(func() {
			err := testenv.InNetns(ns, func() error {
				deadline := time.Now().Add(2 * time.Minute)
				for i := 0; i < 200_000/workers && time.Now().Before(deadline); i++ {
					select {
					case <-stop:
						return nil
					default:
					}
					if err := l.exchange(fmt.Sprintf("worker %d connection %d", w, i)); err != nil {
						l.fail(err)
					} else {
						l.ok.Add(1)
					}
				}
				return nil
			})
			if err != nil {
				l.fail(err)
			}
		})
	}
	return l
}

func (l *vipLoad) exchange(line string) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(bgpVIP, "80"), 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return fmt.Errorf("%s: write: %w", line, err)
	}
	br := bufio.NewReader(c)
	hello, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(hello, "hello from 127.0.0.1:900") {
		return fmt.Errorf("%s: greeting %q: %v", line, hello, err)
	}
	echo, err := br.ReadString('\n')
	if err != nil || echo != line+"\n" {
		return fmt.Errorf("%s: echo %q: %v", line, echo, err)
	}
	return nil
}

func (l *vipLoad) fail(err error) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, err)
	}
}

// TestBGPUpgradesKeepTheRoute is the promise for upgrades: with
// graceful restart on at weir and at BIRD, 5 upgrades of a loaded weir
// (SIGQUIT upgrades in both orders and SIGHUP reloads) never take the
// vip's route out of BIRD's table (polled every 20 ms), BIRD's log shows
// 5 graceful restarts, each ended by the new weir's End-of-RIB, and no
// removal of the vip, and not one of the connections made through the
// vip all along fails. Afterwards a real loss still withdraws the vip:
// its backends fail and BIRD drops the route; they recover and it
// returns; SIGTERM withdraws it with the session up, as without
// graceful restart.
func TestBGPUpgradesKeepTheRoute(t *testing.T) {
	const failures, interval = 3, 500 * time.Millisecond
	l := startBGPLab(t, bgpLabOptions{gracefulRestart: true, interval: interval, failures: failures, timeout: interval})
	l.announced(t, "the vip's /32 in BIRD's table", 15*time.Second)
	logStart := len(birdLogLines(t, l.bird))
	cur := l.weir
	cleanupPID := func() {
		if pid := readPID(l.pidFile); pid != 0 && pid != l.weir.cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t.Cleanup(cleanupPID)

	watch := watchVIPRoute(l.bird)
	stop := make(chan struct{})
	load := startVIPLoad(l.ns, 2, stop)
	began := time.Now()
	steps := []string{"SIGQUIT, new weir first", "SIGHUP", "SIGQUIT first", "SIGHUP", "SIGQUIT, new weir first"}
	for i, step := range steps {
		old := cur
		before := load.ok.Load()
		switch step {
		case "SIGHUP":
			old.signal(t, syscall.SIGHUP)
		case "SIGQUIT, new weir first":
			cur = runWeir(t, exec.Command("ip", "netns", "exec", l.weirNS, os.Args[0], "-u", "-c", l.conf), l.logs)
			old.signal(t, syscall.SIGQUIT)
		case "SIGQUIT first":
			old.signal(t, syscall.SIGQUIT)
			cur = runWeir(t, exec.Command("ip", "netns", "exec", l.weirNS, os.Args[0], "-u", "-c", l.conf), l.logs)
		}
		if err := old.waitExit(t, 20*time.Second); err != nil {
			t.Fatalf("step %d (%s): the old weir exited with %v\n%s", i, step, err, l.logs)
		}
		deadline := time.Now().Add(10 * time.Second)
		for pid := readPID(l.pidFile); pid == 0 || pid == old.cmd.Process.Pid; pid = readPID(l.pidFile) {
			if time.Now().After(deadline) {
				t.Fatalf("step %d (%s): the pid file still names %d\n%s", i, step, pid, l.logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if step == "SIGHUP" {
			adopted, err := adoptProcess(readPID(l.pidFile))
			if err != nil {
				t.Fatal(err)
			}
			cur = adopted
		}
		// The new weir's End-of-RIB ends BIRD's graceful restart; the next
		// upgrade comes after it, and after the new weir has served.
		l.bird.Eventually(15*time.Second, fmt.Sprintf("step %d (%s): BIRD's graceful restart done", i, step), func() (bool, string) {
			n := countBIRDLog(birdLogLines(t, l.bird)[logStart:], "Neighbor graceful restart done")
			return n == i+1, fmt.Sprintf("%d done", n)
		})
		for until, deadline := before+50, time.Now().Add(10*time.Second); load.ok.Load() < until; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("step %d (%s): fewer than 50 connections through the vip within 10s", i, step)
			}
		}
	}
	close(stop)
	load.wg.Wait()
	watch.stop()
	elapsed := time.Since(began)
	if len(watch.errs) > 0 {
		t.Fatalf("polling BIRD: %v", errors.Join(watch.errs...))
	}
	if watch.missing > 0 || watch.polls < 100 {
		t.Errorf("the vip's route was missing from BIRD's table in %d of %d polls (first at %v), want 0 (of at least 100)",
			watch.missing, watch.polls, watch.firstMissing.Sub(began))
	}
	if n := load.failed.Load(); n > 0 || load.ok.Load() == 0 {
		t.Errorf("%d of %d connections through the vip failed across the upgrades, want 0: %v", n, n+load.ok.Load(), errors.Join(load.errs...))
	}
	lines := birdLogLines(t, l.bird)[logStart:]
	removed := 0
	for _, line := range lines {
		if strings.Contains(line, bgpVIPRoute.String()) && strings.Contains(line, "removed") {
			removed++
		}
	}
	detected, done := countBIRDLog(lines, "Neighbor graceful restart detected"), countBIRDLog(lines, "Neighbor graceful restart done")
	if removed != 0 || detected != len(steps) || done != len(steps) {
		t.Errorf("BIRD's log across the upgrades: the vip removed %d times (want 0), %d graceful restarts detected and %d done (want %d):\n%s",
			removed, detected, done, len(steps), strings.Join(lines, "\n"))
	}
	gaps := restartGaps(t, lines)
	t.Logf("%d upgrades in %v: the vip's route in BIRD's table in %d of %d polls (%.1f%%); %d connections through the vip, %d failed; "+
		"session closed to End-of-RIB: %v (median %v)", len(steps), elapsed.Round(time.Millisecond), watch.polls-watch.missing, watch.polls,
		100*float64(watch.polls-watch.missing)/float64(max(watch.polls, 1)), load.ok.Load(), load.failed.Load(), gaps, median(gaps))

	// A real loss after the upgrades still withdraws the vip.
	for _, b := range l.backends {
		b.stop()
	}
	l.withdrawn(t, "the vip withdrawn once its backends fail, after the upgrades", time.Second+failures*interval+500*time.Millisecond)
	for _, b := range l.backends {
		b.start()
	}
	l.announced(t, "the vip announced again once its backends recover", time.Second+interval+500*time.Millisecond)
	cur.signal(t, syscall.SIGTERM)
	l.bird.Eventually(time.Second, "SIGTERM: the vip withdrawn with the session still up", func() (bool, string) {
		r := l.bird.Route(bgpVIPRoute)
		up, s := l.bird.Established("weir")
		return r == "" && up, r + s
	})
	if err := cur.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the last weir exited with %v", err)
	}
}

// TestBGPUpgradeWithdrawsALostVIP upgrades weir just after every backend
// of the vip went down, before the old weir noticed (its next health
// check is 30 s away): the old weir hands the route over as announced,
// and the new one, whose first health round finds no backend, leaves it
// out of its End-of-RIB, so BIRD drops it: a real loss is withdrawn
// across an upgrade too, not kept for the restart time.
func TestBGPUpgradeWithdrawsALostVIP(t *testing.T) {
	l := startBGPLab(t, bgpLabOptions{gracefulRestart: true, interval: 30 * time.Second})
	l.announced(t, "the vip's /32 in BIRD's table", 15*time.Second)
	t.Cleanup(func() {
		if pid := readPID(l.pidFile); pid != 0 && pid != l.weir.cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	logStart := len(birdLogLines(t, l.bird))
	for _, b := range l.backends {
		b.stop()
	}
	next := runWeir(t, exec.Command("ip", "netns", "exec", l.weirNS, os.Args[0], "-u", "-c", l.conf), l.logs)
	l.weir.signal(t, syscall.SIGQUIT)
	if err := l.weir.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the old weir exited with %v\n%s", err, l.logs)
	}
	if out := l.logs.String(); !strings.Contains(out, `nothing withdrawn; the routers keep the vips while the new weir re-opens the sessions" vips=[192.0.2.10]`) {
		t.Fatalf("the old weir did not hand the announced vip over:\n%s", out)
	}
	l.withdrawn(t, "the vip withdrawn at the new weir's End-of-RIB", 15*time.Second)
	lines := birdLogLines(t, l.bird)[logStart:]
	if countBIRDLog(lines, "Neighbor graceful restart done") != 1 || countBIRDLog(lines, "removed") == 0 {
		t.Errorf("BIRD's log: want the graceful restart done and the vip removed:\n%s", strings.Join(lines, "\n"))
	}
	next.signal(t, syscall.SIGTERM)
	if err := next.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the new weir exited with %v", err)
	}
}

func birdLogLines(t *testing.T, b *testenv.BIRD) []string {
	t.Helper()
	data, err := os.ReadFile(b.Log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

func countBIRDLog(lines []string, text string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, text) {
			n++
		}
	}
	return n
}

// restartGaps returns, for each graceful restart in BIRD's log, the time
// from the old session's close ("Neighbor graceful restart detected") to
// the new session's End-of-RIB ("Neighbor graceful restart done").
func restartGaps(t *testing.T, lines []string) []time.Duration {
	t.Helper()
	var gaps []time.Duration
	var detected time.Time
	for _, line := range lines {
		switch {
		case strings.Contains(line, "Neighbor graceful restart detected"):
			detected = birdLogTime(t, line)
		case strings.Contains(line, "Neighbor graceful restart done") && !detected.IsZero():
			gaps = append(gaps, birdLogTime(t, line).Sub(detected))
			detected = time.Time{}
		}
	}
	return gaps
}

// birdLogTime reads the time of a BIRD log line (timeformat log "%F
// %T.%3f", as testenv.StartBIRD configures).
func birdLogTime(t *testing.T, line string) time.Time {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("BIRD log line without a time: %q", line)
	}
	ts, err := time.Parse("2006-01-02 15:04:05.000", f[0]+" "+f[1])
	if err != nil {
		t.Fatalf("BIRD log line %q: %v", line, err)
	}
	return ts
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
