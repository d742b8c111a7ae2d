package main

import (
	"bytes"
	"context"
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
// started again on the same address.
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
			io.WriteString(c, "hello from "+b.addr+"\n")
			c.Close()
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
	logs      weirLog
	weir      *weirProc
}

// startBGPLab builds the BGP lab, starts BIRD and the backends, and runs
// weir with the vip announced.
func startBGPLab(t *testing.T) *bgpLab {
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
	bird := testenv.StartBIRD(t, birdHandle, fmt.Sprintf(`router id %s;
debug protocols { states, routes, events };
protocol device { }
protocol bgp weir {
	local %s as 64496;
	neighbor %s as 64497;
	passive on;
	hold time 9;
	ipv4 { import all; export none; };
}
`, bgpBIRDAddr, bgpBIRDAddr, bgpWeirAddr))

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
      health_check: {type: tcp, interval: %v, timeout: 100ms, consecutive_failure: 1, consecutive_success: 1}
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), adminSock, bgpWeirAddr, bgpConverge,
		bgpBIRDAddr, bgpWeirAddr, bgpVIP, bgpInterval)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logs := logFile(t)
	w := runWeir(t, exec.Command("ip", "netns", "exec", weirNS, os.Args[0], "-c", conf), logs)
	return &bgpLab{bird: bird, backends: backends, adminSock: adminSock, pidFile: filepath.Join(dir, "weir.pid"), logs: logs, weir: w}
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
	l := startBGPLab(t)
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

// TestBGPReloadReopensSessions reloads weir (SIGHUP: a new process takes
// the sockets over) and measures what the routers see: the old process
// withdraws the vip and closes its session after the converge time; the
// new one opens its own session, whose first attempts the router refuses
// while the old session is up, and announces the vip again. The gap is
// what README.md, "Announcing VIPs by BGP", documents.
func TestBGPReloadReopensSessions(t *testing.T) {
	l := startBGPLab(t)
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
