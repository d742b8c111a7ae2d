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
// a veth pair on 198.51.100.0/24 (and 2001:db8::/64 for IPv6); the VIP
// 192.0.2.10 (2001:db8:ffff::10) is on weir's loopback, its backends
// listen on loopback in weir's namespace.
const (
	bgpWeirAddr = "198.51.100.1"
	bgpBIRDAddr = "198.51.100.2"
	bgpVIP      = "192.0.2.10"
	bgpConverge = 2 * time.Second
	bgpInterval = 200 * time.Millisecond
)

var bgpVIPRoute = netip.MustParsePrefix(bgpVIP + "/32")

// bgpFamily is one address family of the BGP lab: the veth pair's
// addresses, BIRD's session of that family, and an l4 service announced
// over it, whose vip is on weir's loopback and whose backends are its
// own. A lab has one or both; nothing changes them.
type bgpFamily struct {
	session            string // BIRD's BGP protocol
	channel            string // BIRD's channel: ipv4 or ipv6
	weirAddr, birdAddr string
	bits               int // the veth pair's prefix length
	vip                netip.Prefix
	service            string
	backends           []string
}

var (
	bgpV4 = &bgpFamily{session: "weir", channel: "ipv4", weirAddr: bgpWeirAddr, birdAddr: bgpBIRDAddr, bits: 24,
		vip: bgpVIPRoute, service: "web", backends: []string{"127.0.0.1:9001", "127.0.0.1:9002"}}
	bgpV6 = &bgpFamily{session: "weir6", channel: "ipv6", weirAddr: "2001:db8::1", birdAddr: "2001:db8::2", bits: 64,
		vip: netip.MustParsePrefix("2001:db8:ffff::10/128"), service: "web6", backends: []string{"[::1]:9011", "[::1]:9012"}}
)

// vipAddr is the service's address, port 80 of the vip.
func (f *bgpFamily) vipAddr() string { return net.JoinHostPort(f.vip.Addr().String(), "80") }

// bgpBackend is a TCP backend in a namespace that can be stopped and
// started again on the same address. It greets each connection with a
// line naming itself, then echoes what it reads until the client closes.
type bgpBackend struct {
	t      *testing.T
	ns     netns.NsHandle
	family *bgpFamily
	addr   string
	ln     net.Listener
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
	// birdNS is BIRD's namespace, where BIRD installs the routes it
	// learns: a client there reaches the vips by them, through weir0.
	birdNSName string
	birdNS     netns.NsHandle
	families   []*bgpFamily
	logs       weirLog
	weir       *weirProc
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
	// families are the lab's sessions and services (nil: bgpV4 alone).
	families []*bgpFamily
}

// startBGPLab builds the BGP lab, starts BIRD and the backends, and runs
// weir with the vip of each family announced to BIRD over a session of
// that family. BIRD exports what it learns to its namespace's kernel
// table.
func startBGPLab(t *testing.T, opts bgpLabOptions) *bgpLab {
	if opts.families == nil {
		opts.families = []*bgpFamily{bgpV4}
	}
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
	for _, f := range opts.families {
		var nodad []string // IPv6 addresses usable at once, without duplicate address detection
		if f.vip.Addr().Is6() {
			nodad = []string{"nodad"}
		}
		ipCmd(t, append([]string{"-n", weirNS, "addr", "add", fmt.Sprintf("%s/%d", f.weirAddr, f.bits), "dev", "weir0"}, nodad...)...)
		ipCmd(t, append([]string{"-n", weirNS, "addr", "add", f.vip.String(), "dev", "lo"}, nodad...)...)
		ipCmd(t, append([]string{"-n", birdNS, "addr", "add", fmt.Sprintf("%s/%d", f.birdAddr, f.bits), "dev", "bird0"}, nodad...)...)
	}
	ipCmd(t, "-n", weirNS, "link", "set", "weir0", "up")
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
	var protocols strings.Builder
	for _, f := range opts.families {
		fmt.Fprintf(&protocols, `protocol kernel {
	%s { export all; };
}
protocol bgp %s {
	local %s as 64496;
	neighbor %s as 64497;
	passive on;
	hold time 9;
	%s
	%s { import all; export none; };
}
`, f.channel, f.session, f.birdAddr, f.weirAddr, birdGR, f.channel)
	}
	bird := testenv.StartBIRD(t, birdHandle, fmt.Sprintf(`router id %s;
debug protocols { states, routes, events };
protocol device { }
%s`, bgpBIRDAddr, protocols.String()))

	ns, err := netns.GetFromName(weirNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	var backends []*bgpBackend
	var peers, services strings.Builder
	for _, f := range opts.families {
		for _, addr := range f.backends {
			b := &bgpBackend{t: t, ns: ns, family: f, addr: addr}
			b.start()
			backends = append(backends, b)
		}
		fmt.Fprintf(&peers, "\n    - {address: %q, asn: 64496, hold_time: 9s, local_address: %q}", f.birdAddr, f.weirAddr)
		fmt.Fprintf(&services, `
  - name: %s
    kind: l4
    protocol: tcp
    vip: %q
    dataplane: userspace
    announce: {communities: ["64497:100", no-export]}
    upstream:
      backends: ["%s"]
      health_check: {type: tcp, interval: %v, timeout: %v, consecutive_failure: %d, consecutive_success: 1}`,
			f.service, f.vipAddr(), strings.Join(f.backends, `", "`), opts.interval, opts.timeout, opts.failures)
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
  peers:%s
services:%s
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), adminSock, bgpWeirAddr, bgpConverge, weirGR,
		peers.String(), services.String())), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logs := logFile(t)
	w := runWeir(t, exec.Command("ip", "netns", "exec", weirNS, os.Args[0], "-c", conf), logs)
	return &bgpLab{bird: bird, backends: backends, adminSock: adminSock, pidFile: filepath.Join(dir, "weir.pid"), conf: conf,
		weirNS: weirNS, ns: ns, birdNSName: birdNS, birdNS: birdHandle, families: opts.families, logs: logs, weir: w}
}

// announced waits until BIRD has the vip of each of families (nil: the
// lab's) from weir, its host route with weir's address on the session as
// next hop and the configured communities.
func (l *bgpLab) announced(t *testing.T, what string, within time.Duration, families ...*bgpFamily) {
	t.Helper()
	if families == nil {
		families = l.families
	}
	l.bird.Eventually(within, what, func() (bool, string) {
		for _, f := range families {
			r := l.bird.Route(f.vip)
			if !strings.Contains(r, "via "+f.weirAddr+" on bird0") || !strings.Contains(r, "BGP.next_hop: "+f.weirAddr) ||
				!strings.Contains(r, "BGP.community: (64497,100) (65535,65281)") || !strings.Contains(r, "BGP.as_path: 64497") {
				return false, f.vip.String() + ": " + r
			}
		}
		return true, ""
	})
}

// withdrawn waits until BIRD has no route to the vip of each of families
// (nil: the lab's).
func (l *bgpLab) withdrawn(t *testing.T, what string, within time.Duration, families ...*bgpFamily) {
	t.Helper()
	if families == nil {
		families = l.families
	}
	l.bird.Eventually(within, what, func() (bool, string) {
		for _, f := range families {
			if r := l.bird.Route(f.vip); r != "" {
				return false, r
			}
		}
		return true, ""
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

// bgpRouteWatch polls BIRD's table for a vip every 20 ms, from its
// start until stop (at most two minutes), and counts the polls that
// found no route.
type bgpRouteWatch struct {
	bird    *testenv.BIRD
	vip     netip.Prefix
	done    chan struct{}
	stopped chan struct{}

	polls, missing int
	firstMissing   time.Time
	errs           []error
}

func watchVIPRoute(bird *testenv.BIRD, vip netip.Prefix) *bgpRouteWatch {
	w := &bgpRouteWatch{bird: bird, vip: vip, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
			select {
			case <-w.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			out, err := bird.Birdc("show route " + vip.String())
			switch {
			case err != nil && !strings.Contains(out, "Network not found"):
				w.errs = append(w.errs, err)
			case !strings.Contains(out, vip.String()):
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

// vipLoad is a bounded client loop (see run) and its count. The BGP lab's
// (startVIPLoad): workers, in the namespace ns (weir's, or BIRD's to
// follow BIRD's route), each open a TCP connection to the family's vip
// after the other through weir's userspace L4, and check that the
// greeting of one of its backends and the echo of a line come back, until
// stop (at most two minutes or 200,000 connections).
type vipLoad struct {
	family     *bgpFamily
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []error // the first few failures
	wg         sync.WaitGroup
}

func startVIPLoad(ns netns.NsHandle, f *bgpFamily, workers int, stop <-chan struct{}) *vipLoad {
	l := &vipLoad{family: f}
	l.run(workers, 200_000, 0, stop, func(loop func() error) error { return testenv.InNetns(ns, loop) }, l.exchange)
	return l
}

// run is the loop: workers each make connections by exchange (its
// argument names the connection), one after the other with pause between,
// inside in (the namespace to run a worker's loop in, or none), until
// stop, two minutes or max connections in all, counting in l.
func (l *vipLoad) run(workers, max int, pause time.Duration, stop <-chan struct{}, in func(loop func() error) error, exchange func(string) error) {
	for w := range workers {
		l.wg.Go(func() {
			err := in(func() error {
				deadline := time.Now().Add(2 * time.Minute)
				for i := 0; i < max/workers && time.Now().Before(deadline); i++ {
					if stopped(stop) {
						return nil
					}
					time.Sleep(pause)
					if err := exchange(fmt.Sprintf("worker %d connection %d", w, i)); err != nil {
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
}

func (l *vipLoad) exchange(line string) error {
	c, err := net.DialTimeout("tcp", l.family.vipAddr(), 3*time.Second)
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
	if err != nil || !slices.Contains(l.family.backends, strings.TrimSuffix(strings.TrimPrefix(hello, "hello from "), "\n")) {
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
	logStart := len(birdLogLines(t, l.bird.Log))
	cur := l.weir
	cleanupPID := func() {
		if pid := readPID(l.pidFile); pid != 0 && pid != l.weir.cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t.Cleanup(cleanupPID)

	watch := watchVIPRoute(l.bird, bgpVIPRoute)
	stop := make(chan struct{})
	load := startVIPLoad(l.ns, bgpV4, 2, stop)
	began := time.Now()
	steps := []string{"SIGQUIT, new weir first", "SIGHUP", "SIGQUIT first", "SIGHUP", "SIGQUIT, new weir first"}
	for i, step := range steps {
		before := load.ok.Load()
		cur = l.upgrade(t, fmt.Sprintf("step %d (%s)", i, step), cur, step)
		// The new weir's End-of-RIB ends BIRD's graceful restart; the next
		// upgrade comes after it, and after the new weir has served.
		l.bird.Eventually(15*time.Second, fmt.Sprintf("step %d (%s): BIRD's graceful restart done", i, step), func() (bool, string) {
			n := countBIRDLog(birdLogLines(t, l.bird.Log)[logStart:], "Neighbor graceful restart done")
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
	lines := birdLogLines(t, l.bird.Log)[logStart:]
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

// upgrade replaces the running weir, old, by a new one: a SIGHUP reload,
// or a SIGQUIT upgrade with the new weir started before ("SIGQUIT, new
// weir first") or after ("SIGQUIT first") the signal. It waits until old
// has exited and the pid file names its successor, and returns it.
func (l *bgpLab) upgrade(t *testing.T, what string, old *weirProc, how string) *weirProc {
	t.Helper()
	return upgradeWeir(t, what, old, how, l.pidFile, l.logs, func() *weirProc {
		return runWeir(t, exec.Command("ip", "netns", "exec", l.weirNS, os.Args[0], "-u", "-c", l.conf), l.logs)
	})
}

// upgradeWeir is upgrade for any weir: successor starts its new weir (with
// -u, where old runs), and pidFile is their configuration's pid_file.
func upgradeWeir(t testing.TB, what string, old *weirProc, how, pidFile string, logs weirLog, successor func() *weirProc) *weirProc {
	t.Helper()
	var next *weirProc
	switch how {
	case "SIGHUP":
		old.signal(t, syscall.SIGHUP)
	case "SIGQUIT, new weir first":
		next = successor()
		old.signal(t, syscall.SIGQUIT)
	case "SIGQUIT first":
		old.signal(t, syscall.SIGQUIT)
		next = successor()
	default:
		t.Fatalf("%s: no upgrade %q", what, how)
	}
	if err := old.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("%s: the old weir exited with %v\n%s", what, err, logs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := readPID(pidFile); pid == 0 || pid == old.cmd.Process.Pid; pid = readPID(pidFile) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the pid file still names %d\n%s", what, pid, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if next == nil {
		adopted, err := adoptProcess(readPID(pidFile))
		if err != nil {
			t.Fatal(err)
		}
		next = adopted
	}
	return next
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
	logStart := len(birdLogLines(t, l.bird.Log))
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
	lines := birdLogLines(t, l.bird.Log)[logStart:]
	if countBIRDLog(lines, "Neighbor graceful restart done") != 1 || countBIRDLog(lines, "removed") == 0 {
		t.Errorf("BIRD's log: want the graceful restart done and the vip removed:\n%s", strings.Join(lines, "\n"))
	}
	next.signal(t, syscall.SIGTERM)
	if err := next.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the new weir exited with %v", err)
	}
}

// birdLogLines reads the lines of a BIRD log file.
func birdLogLines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

func countBIRDLog(lines []string, text string) int { return len(grepBIRDLog(lines, text)) }

// grepBIRDLog returns the lines holding text.
func grepBIRDLog(lines []string, text string) []string {
	var found []string
	for _, l := range lines {
		if strings.Contains(l, text) {
			found = append(found, l)
		}
	}
	return found
}

// restartGaps returns, for each graceful restart in BIRD's log, the time
// from the old session's close ("Neighbor graceful restart detected") to
// the new session's End-of-RIB ("Neighbor graceful restart done").
func restartGaps(t testing.TB, lines []string) []time.Duration {
	t.Helper()
	var gaps []time.Duration
	var detected time.Time
	for _, line := range lines {
		switch {
		case strings.Contains(line, "Neighbor graceful restart detected"):
			detected = testenv.BIRDLogTime(t, line)
		case strings.Contains(line, "Neighbor graceful restart done") && !detected.IsZero():
			gaps = append(gaps, testenv.BIRDLogTime(t, line).Sub(detected))
			detected = time.Time{}
		}
	}
	return gaps
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestBGPIPv6 runs weir with an IPv6 l4 vip announced to BIRD 2 over an
// IPv6 session, alone and beside an IPv4 vip on an IPv4 session (dual
// stack: pkg/bgp gives each session one address family), with graceful
// restart on. Each vip's host route reaches BIRD with weir's address on
// its session as next hop and the communities; clients in BIRD's
// namespace reach each vip through weir by the route BIRD installed; the
// IPv6 vip is withdrawn when its backends fail, alone, and announced
// again when they recover; an upgrade (SIGQUIT) under load through every
// vip never takes a route out of BIRD's table (polled every 20 ms) and
// fails no connection; SIGTERM withdraws every vip with the sessions up.
func TestBGPIPv6(t *testing.T) {
	for _, tc := range []struct {
		name     string
		families []*bgpFamily
	}{
		{"ipv6", []*bgpFamily{bgpV6}},
		{"dual stack", []*bgpFamily{bgpV4, bgpV6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const failures, interval = 3, 500 * time.Millisecond
			l := startBGPLab(t, bgpLabOptions{gracefulRestart: true, interval: interval, failures: failures, timeout: interval, families: tc.families})
			l.announced(t, "every vip's host route in BIRD's table with the communities", 15*time.Second)
			t.Cleanup(func() {
				if pid := readPID(l.pidFile); pid != 0 && pid != l.weir.cmd.Process.Pid {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})

			status, metrics := weirStatus(t, l.adminSock), adminMetrics(t, l.adminSock)
			for _, f := range tc.families {
				for _, want := range []string{
					f.birdAddr + " 64496 established",
					fmt.Sprintf("%s announced %s 2/1 64497:100 no-export 1 0", f.vip.Addr(), f.service),
				} {
					if !hasFieldsLine(status, want) {
						t.Errorf("weir status lacks a line %q:\n%s", want, status)
					}
				}
				for _, want := range []string{
					fmt.Sprintf(`weir_bgp_vip_announced{vip="%s"} 1`, f.vip.Addr()),
					fmt.Sprintf(`weir_bgp_peer_up{peer="%s"} 1`, f.birdAddr),
				} {
					if !strings.Contains(metrics, want) {
						t.Errorf("metrics lack %s:\n%s", want, strings.Join(grepLines(metrics, "weir_bgp_"), "\n"))
					}
				}
				// BIRD's namespace routes the vip by what BIRD learnt, to weir's
				// address on the session; a client there reaches the vip.
				out, err := exec.Command("ip", "-n", l.birdNSName, "route", "get", f.vip.Addr().String()).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "via "+f.weirAddr+" dev bird0") {
					t.Errorf("ip route get %s in BIRD's namespace: %v:\n%s", f.vip.Addr(), err, out)
				}
				load := &vipLoad{family: f}
				err = testenv.InNetns(l.birdNS, func() error {
					for i := range 20 {
						if err := load.exchange(fmt.Sprintf("connection %d", i)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatalf("a client in BIRD's namespace to %s: %v", f.vipAddr(), err)
				}
			}

			// The IPv6 vip's backends fail: its route goes, alone.
			for _, b := range l.backends {
				if b.family == bgpV6 {
					b.stop()
				}
			}
			l.withdrawn(t, "the IPv6 vip withdrawn once its backends fail", time.Second+failures*interval+500*time.Millisecond, bgpV6)
			if slices.Contains(tc.families, bgpV4) {
				l.announced(t, "the IPv4 vip still announced", 0, bgpV4)
			}
			for _, b := range l.backends {
				if b.family == bgpV6 {
					b.start()
				}
			}
			l.announced(t, "the IPv6 vip announced again once its backends recover", time.Second+interval+500*time.Millisecond, bgpV6)

			// One upgrade under load through every vip, from BIRD's namespace.
			logStart := len(birdLogLines(t, l.bird.Log))
			stop := make(chan struct{})
			var watches []*bgpRouteWatch
			var loads []*vipLoad
			for _, f := range tc.families {
				watches = append(watches, watchVIPRoute(l.bird, f.vip))
				loads = append(loads, startVIPLoad(l.birdNS, f, 1, stop))
			}
			before := make([]int64, len(loads))
			for i, load := range loads {
				before[i] = load.ok.Load()
			}
			cur := l.upgrade(t, "upgrade", l.weir, "SIGQUIT, new weir first")
			l.bird.Eventually(15*time.Second, "BIRD's graceful restart of every session done", func() (bool, string) {
				lines := birdLogLines(t, l.bird.Log)[logStart:]
				detected, done := countBIRDLog(lines, "Neighbor graceful restart detected"), countBIRDLog(lines, "Neighbor graceful restart done")
				return detected == len(tc.families) && done == len(tc.families), fmt.Sprintf("%d detected, %d done", detected, done)
			})
			for i, load := range loads {
				for until, deadline := before[i]+50, time.Now().Add(10*time.Second); load.ok.Load() < until; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("fewer than 50 connections through %s within 10s of the upgrade", load.family.vipAddr())
					}
				}
			}
			close(stop)
			for i, f := range tc.families {
				loads[i].wg.Wait()
				watches[i].stop()
				w, load := watches[i], loads[i]
				if len(w.errs) > 0 {
					t.Fatalf("polling BIRD: %v", errors.Join(w.errs...))
				}
				if w.missing > 0 || w.polls < 20 {
					t.Errorf("%s was missing from BIRD's table in %d of %d polls across the upgrade, want 0 (of at least 20)", f.vip, w.missing, w.polls)
				}
				if n := load.failed.Load(); n > 0 || load.ok.Load() == 0 {
					t.Errorf("%d of %d connections to %s failed across the upgrade, want 0: %v", n, n+load.ok.Load(), f.vipAddr(), errors.Join(load.errs...))
				}
				t.Logf("%s across the upgrade: in BIRD's table in %d of %d polls; %d connections, %d failed", f.vip, w.polls-w.missing, w.polls, load.ok.Load(), load.failed.Load())
			}
			lines := birdLogLines(t, l.bird.Log)[logStart:]
			for _, line := range lines {
				for _, f := range tc.families {
					if strings.Contains(line, f.vip.String()) && strings.Contains(line, "removed") {
						t.Errorf("BIRD removed %s across the upgrade:\n%s", f.vip, strings.Join(lines, "\n"))
					}
				}
			}
			l.announced(t, "every vip announced by the new weir", time.Second)

			cur.signal(t, syscall.SIGTERM)
			l.bird.Eventually(time.Second, "SIGTERM: every vip withdrawn with the sessions still up", func() (bool, string) {
				var seen strings.Builder
				for _, f := range tc.families {
					r := l.bird.Route(f.vip)
					up, s := l.bird.Established(f.session)
					if r != "" || !up {
						return false, r + s
					}
					seen.WriteString(s)
				}
				return true, seen.String()
			})
			if err := cur.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("the new weir exited with %v", err)
			}
		})
	}
}
