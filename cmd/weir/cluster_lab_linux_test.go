package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/internal/lab"
	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// The cluster lab's VIP (examples/lab-cluster.yaml): a DSR service on
// every node, announced by each to the router.
var (
	clusterVIP   = netip.AddrPortFrom(lab.DSRVIP4, 80)
	clusterRoute = lab.DSRVIP4.String() + "/32"
)

// clusterLab is a cluster lab with a weir running on each node.
type clusterLab struct {
	t     testing.TB // the test that started the lab: its weirs live as long
	l     *lab.Lab
	n     int
	nodes []*clusterNode // nodes[k-1] is node k
}

// clusterNode is node k's weir: its configuration, pid file, log and
// process.
type clusterNode struct {
	k       int
	conf    string
	pidFile string
	log     weirLog
	proc    *weirProc
}

// clusterOptions make examples/lab-cluster.yaml fit for a test.
type clusterOptions struct {
	gracefulRestart time.Duration // bgp.graceful_restart
	// The health checks': every interval, each given timeout, a backend
	// down after failures in a row (0: 200 ms, 100 ms and 1, quick to find
	// a real loss; a lab under load needs more, or a check starved of CPU
	// fails and the node withdraws).
	interval, timeout time.Duration
	failures          int
}

// startCluster builds the cluster lab of n nodes, sets the backends up
// for DSR with a clusterServer each, and starts a weir on every node with
// examples/lab-cluster.yaml made fit for a test: health checks every
// 200 ms that give up after one failure, and graceful_restart gr. It
// returns once the router has an ECMP route through every node.
func startCluster(t testing.TB, n int, gr time.Duration) *clusterLab {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{gracefulRestart: gr})
}

// startClusterWith is startCluster with opts.
func startClusterWith(t testing.TB, n int, opts clusterOptions) *clusterLab {
	t.Helper()
	if opts.interval == 0 {
		opts.interval, opts.timeout, opts.failures = 200*time.Millisecond, 100*time.Millisecond, 1
	}
	l := lab.UpCluster(t, n)
	for i, role := range lab.Backends {
		setUpDSRBackend(t, l, role, "--encap", "ipip")
		// A wildcard listener: answers leave from the address the
		// connection was made to, the VIP (or the backend's own, for the
		// health checks).
		ln, err := l.Listen(role, "tcp4", ":80")
		if err != nil {
			t.Fatal(err)
		}
		serveCluster(t, ln, lab.Backends[i])
	}
	template, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterLab{t: t, l: l, n: n}
	for k := 1; k <= n; k++ {
		dir := t.TempDir()
		conf := strings.NewReplacer(
			"198.51.100.130", lab.NodeFront4(k).String(),
			"/sys/fs/bpf/weir-n1", l.NodePinPath(k),
			"/run/weir/lab-n1", filepath.Join(dir, "n"),
			"graceful_restart: 10s", fmt.Sprintf("graceful_restart: %v", opts.gracefulRestart),
			"interval: 1s}", fmt.Sprintf("interval: %v, timeout: %v, consecutive_failure: %d, consecutive_success: 1}",
				opts.interval, opts.timeout, opts.failures),
		).Replace(string(template))
		path := filepath.Join(dir, "weir.yaml")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// The template's pid_file, /run/weir/lab-n1.pid, made dir/n.pid.
		node := &clusterNode{k: k, conf: path, pidFile: filepath.Join(dir, "n.pid"), log: logFile(t)}
		c.nodes = append(c.nodes, node)
		c.start(node)
	}
	c.waitHops(t, "every node's route in the router's ECMP route", 30*time.Second, c.all()...)
	return c
}

// start runs a weir on node until the lab's test ends (a subtest that
// starts one must not have it killed when it ends).
func (c *clusterLab) start(node *clusterNode) {
	c.t.Helper()
	node.proc = runWeir(c.t, c.l.Command(lab.Node(node.k), os.Args[0], "-c", node.conf), node.log)
}

// all is every node, 1 to n.
func (c *clusterLab) all() []int {
	var ks []int
	for k := 1; k <= c.n; k++ {
		ks = append(ks, k)
	}
	return ks
}

var nextHop = regexp.MustCompile(`via (\S+)`)

// hops returns the next hops of the router's kernel route to the VIP (the
// one BIRD installs: a nexthop per announcing node), as node numbers,
// sorted, with ip's words for it.
func (c *clusterLab) hops(t testing.TB) ([]int, string) {
	t.Helper()
	ks, out, err := c.routeHops()
	if err != nil {
		t.Fatal(err)
	}
	return ks, out
}

// routeHops is hops for a goroutine other than the test's: it returns the
// error. ip -n enters the router's namespace itself, without ip netns
// exec's remount of /sys: the cheaper for polling.
func (c *clusterLab) routeHops() ([]int, string, error) {
	b, err := exec.Command("ip", "-n", c.l.NS(lab.Router), "-4", "route", "show", "exact", clusterRoute).CombinedOutput()
	out := string(b)
	if err != nil {
		return nil, out, fmt.Errorf("ip route show %s in %s: %w: %s", clusterRoute, c.l.NS(lab.Router), err, out)
	}
	var ks []int
	for _, m := range nextHop.FindAllStringSubmatch(out, -1) {
		for k := 1; k <= c.n; k++ {
			if m[1] == lab.NodeFront4(k).String() {
				ks = append(ks, k)
			}
		}
	}
	slices.Sort(ks)
	return ks, out, nil
}

// waitHops polls (every 10 ms) until the router's route to the VIP goes
// through exactly the nodes want, failing after within, and returns how
// long that took.
func (c *clusterLab) waitHops(t testing.TB, what string, within time.Duration, want ...int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, out := c.hops(t)
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			bird, _ := c.l.Birdc("show", "route", "all")
			t.Fatalf("not within %v: %s: the route goes through nodes %v, want %v:\n%s\nBIRD:\n%s", within, what, got, want, out, bird)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newFlows reads node k's count of new flows of the VIP's service from
// its pinned data plane.
func (c *clusterLab) newFlows(t testing.TB, k int) uint64 {
	t.Helper()
	return pinnedService(t, c.l.NodePinPath(k), clusterVIP, dataplane.ProtoTCP).Stats.NewFlows
}

// flowCounts reads every node's new flow count, indexed by node - 1.
func (c *clusterLab) flowCounts(t testing.TB) []uint64 {
	t.Helper()
	var counts []uint64
	for k := 1; k <= c.n; k++ {
		counts = append(counts, c.newFlows(t, k))
	}
	return counts
}

// greet opens a connection to the VIP from the client, reads the
// backend's greeting (its name) and closes it.
func (c *clusterLab) greet() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := c.l.Dial(ctx, lab.Client, "tcp4", clusterVIP.String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// newFlowsThrough opens n connections one after another, failing t at
// the first that does not greet, and returns how many each node forwarded
// (from its counters) and each backend answered.
func (c *clusterLab) newFlowsThrough(t testing.TB, n int) ([]uint64, map[string]int) {
	t.Helper()
	before := c.flowCounts(t)
	backends := map[string]int{}
	for i := range n {
		name, err := c.greet()
		if err != nil {
			t.Fatalf("connection %d of %d through %s: %v (backends so far %v)", i+1, n, clusterVIP, err, backends)
		}
		backends[name]++
	}
	after := c.flowCounts(t)
	for i := range after {
		after[i] -= before[i]
	}
	return after, backends
}

// serveCluster answers each connection on ln as a cluster lab backend
// named name, until the test ends: it greets with "name\n", then reads a
// command line: "echo" answers each further line with "name line";
// "stream" writes the lines "name 00000000", "name 00000001", ... one
// every 20 ms until the client goes. Anything else, or nothing (a health
// check), closes.
func serveCluster(t testing.TB, ln net.Listener, name string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := io.WriteString(conn, name+"\n"); err != nil {
					return
				}
				r := bufio.NewReader(conn)
				cmd, err := r.ReadString('\n')
				if err != nil {
					return
				}
				switch strings.TrimSpace(cmd) {
				case "echo":
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if _, err := io.WriteString(conn, name+" "+line); err != nil {
							return
						}
					}
				case "stream":
					for seq := 0; ; seq++ {
						if _, err := fmt.Fprintf(conn, "%s %08d\n", name, seq); err != nil {
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
	}()
}

// longConn is a long-lived connection through the VIP: an interactive
// echo (a line every 50 ms, each answer checked) or a slow download
// (every line checked: the backend's name and the next sequence number),
// run until stopped. progress counts the lines checked; err is the first
// fault: a reset, a timeout, a wrong or missing byte, another backend.
type longConn struct {
	id       int
	kind     string // "echo" or "stream"
	backend  string
	progress atomic.Int64
	mu       sync.Mutex
	err      error
}

func (lc *longConn) fail(err error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.err == nil {
		lc.err = err
	}
}

func (lc *longConn) failed() error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.err
}

// openLong opens a longConn of kind through the VIP and runs it in a
// goroutine until stop is closed; wg is done when it has ended.
func (c *clusterLab) openLong(id int, kind string, stop <-chan struct{}, wg *sync.WaitGroup) (*longConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.l.Dial(ctx, lab.Client, "tcp4", clusterVIP.String())
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	greeting, err := r.ReadString('\n')
	if err == nil {
		_, err = io.WriteString(conn, kind+"\n")
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open %s connection %d: %w", kind, id, err)
	}
	lc := &longConn{id: id, kind: kind, backend: strings.TrimSuffix(greeting, "\n")}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer conn.Close()
		// Closing (not a deadline, which the loops push back) ends a
		// read or write in progress.
		go func() { <-stop; conn.Close() }()
		if kind == "echo" {
			lc.echo(conn, r, stop)
		} else {
			lc.stream(conn, r, stop)
		}
	}()
	return lc, nil
}

// longDeadline bounds the wait for one line: longer than the worst
// convergence (a hold time, and TCP's retransmission backoff after it).
const longDeadline = 20 * time.Second

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func (lc *longConn) echo(conn net.Conn, r *bufio.Reader, stop <-chan struct{}) {
	for seq := 0; !stopped(stop); seq++ {
		msg := fmt.Sprintf("ping %d %d\n", lc.id, seq)
		conn.SetDeadline(time.Now().Add(longDeadline))
		if _, err := io.WriteString(conn, msg); err != nil {
			if !stopped(stop) {
				lc.fail(fmt.Errorf("echo %d: write %d: %w", lc.id, seq, err))
			}
			return
		}
		got, err := r.ReadString('\n')
		if err != nil {
			if !stopped(stop) {
				lc.fail(fmt.Errorf("echo %d: read answer %d: %w", lc.id, seq, err))
			}
			return
		}
		if want := lc.backend + " " + msg; got != want {
			lc.fail(fmt.Errorf("echo %d: answer %q, want %q", lc.id, got, want))
			return
		}
		lc.progress.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
}

func (lc *longConn) stream(conn net.Conn, r *bufio.Reader, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		conn.SetDeadline(time.Now().Add(longDeadline))
		got, err := r.ReadString('\n')
		if err != nil {
			if !stopped(stop) {
				lc.fail(fmt.Errorf("stream %d: read line %d: %w", lc.id, seq, err))
			}
			return
		}
		if want := fmt.Sprintf("%s %08d\n", lc.backend, seq); got != want {
			lc.fail(fmt.Errorf("stream %d: line %q, want %q", lc.id, got, want))
			return
		}
		lc.progress.Add(1)
	}
}

// TestClusterLabSpreadsFlows is the cluster's first promise: the VIP
// answers through every node, and 300 new flows spread over the three
// nodes (by the router's ECMP hashing on ports) each within ±50% of a
// third, counted by each node's own data plane; the backends too get
// their Maglev shares.
func TestClusterLabSpreadsFlows(t *testing.T) {
	c := startCluster(t, 3, 10*time.Second)
	bird, err := c.l.Birdc("show", "route")
	if err != nil {
		t.Fatal(err)
	}
	_, route := c.hops(t)
	t.Logf("the router's view: birdc show route:\n%s\nip route show %s:\n%s", bird, clusterRoute, route)
	const flows = 300
	perNode, perBackend := c.newFlowsThrough(t, flows)
	t.Logf("%d new flows: per node %v, per backend %v", flows, perNode, perBackend)
	want := uint64(flows / c.n)
	var sum uint64
	for i, got := range perNode {
		sum += got
		if got < want/2 || got > want*3/2 {
			t.Errorf("node %d forwarded %d of %d new flows, want %d ± 50%% (all: %v)", i+1, got, flows, want, perNode)
		}
	}
	if sum < flows {
		t.Errorf("the nodes counted %d new flows in all, want at least the %d made", sum, flows)
	}
	checkMaglevShares(t, "through the cluster", perBackend, lab.Backends[:], flows)
}

// openLongConns opens n long-lived connections, alternately echo and
// stream, through the VIP, and returns them with how many each node took
// (its new flow count). They run until stop is closed.
func (c *clusterLab) openLongConns(t *testing.T, n int, stop <-chan struct{}, wg *sync.WaitGroup) ([]*longConn, []uint64) {
	t.Helper()
	before := c.flowCounts(t)
	var conns []*longConn
	for i := range n {
		kind := "echo"
		if i%2 == 1 {
			kind = "stream"
		}
		lc, err := c.openLong(i, kind, stop, wg)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, n, err)
		}
		conns = append(conns, lc)
	}
	after := c.flowCounts(t)
	for i := range after {
		after[i] -= before[i]
	}
	return conns, after
}

// keptGoing waits (within) until every connection has made at least more
// progress than at mark, or failed; it returns the connections that
// failed or did not get there.
func keptGoing(conns []*longConn, mark []int64, more int64, within time.Duration) []*longConn {
	deadline := time.Now().Add(within)
	for {
		var behind []*longConn
		for i, lc := range conns {
			if lc.failed() != nil || lc.progress.Load() < mark[i]+more {
				behind = append(behind, lc)
			}
		}
		if len(behind) == 0 || time.Now().After(deadline) {
			return behind
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func marks(conns []*longConn) []int64 {
	m := make([]int64, len(conns))
	for i, lc := range conns {
		m[i] = lc.progress.Load()
	}
	return m
}

// checkConns fails t naming every connection in conns that failed or
// stalled, and returns how many kept going (all conns otherwise).
func checkConns(t *testing.T, what string, conns, behind []*longConn) int {
	t.Helper()
	for _, lc := range behind {
		if err := lc.failed(); err != nil {
			t.Errorf("%s: %s connection %d to %s: %v", what, lc.kind, lc.id, lc.backend, err)
		} else {
			t.Errorf("%s: %s connection %d to %s stalled at %d lines", what, lc.kind, lc.id, lc.backend, lc.progress.Load())
		}
	}
	return len(conns) - len(behind)
}

// TestClusterLabSIGTERMDrainsANode stops node 1 of three with SIGTERM: its
// nexthop leaves the router's route within 1 s (weir withdraws first),
// no new flow reaches it afterwards, and none of 60 connections
// established through the cluster beforehand breaks, neither when the
// router moves node 1's share nor once node 1's weir has exited.
func TestClusterLabSIGTERMDrainsANode(t *testing.T) {
	c := startCluster(t, 3, 10*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	conns, perNode := c.openLongConns(t, 60, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	t.Logf("60 established connections per node: %v", perNode)
	if perNode[0] == 0 {
		t.Fatalf("no connection went through node 1: %v", perNode)
	}
	mark := marks(conns)
	if behind := keptGoing(conns, mark, 2, 10*time.Second); len(behind) > 0 {
		checkConns(t, "before SIGTERM", conns, behind)
		t.FailNow()
	}

	node := c.nodes[0]
	node.proc.signal(t, syscall.SIGTERM)
	took := c.waitHops(t, "node 1's nexthop gone after SIGTERM", 5*time.Second, 2, 3)
	t.Logf("node 1's nexthop left the router's route %v after SIGTERM", took)
	if took > time.Second {
		t.Errorf("node 1's nexthop left the router's route %v after SIGTERM, want within 1 s", took)
	}
	// weir serves on for converge (2 s) after withdrawing: the flows the
	// router sends it now would still be served, so count them.
	before := c.newFlows(t, 1)
	_, perBackend := c.newFlowsThrough(t, 60)
	if after := c.newFlows(t, 1); after != before {
		t.Errorf("node 1 took %d of 60 new flows after its route was withdrawn, want 0", after-before)
	}
	t.Logf("60 new flows after node 1 left reached backends %v", perBackend)
	mark = marks(conns)
	kept := checkConns(t, "after the route moved", conns, keptGoing(conns, mark, 5, 15*time.Second))
	if err := node.proc.waitExit(t, 10*time.Second); err != nil {
		t.Errorf("node 1's weir exited with %v after SIGTERM, want status 0\n%s", err, node.log)
	}
	mark = marks(conns)
	kept = min(kept, checkConns(t, "after node 1's weir exited", conns, keptGoing(conns, mark, 5, 15*time.Second)))
	t.Logf("%d of %d established connections kept going after SIGTERM to node 1", kept, len(conns))
}

// TestClusterLabNodeLossKeepsConnections is the promise of issue 24: 200
// long-lived connections through three nodes (half interactive echoes,
// half slow downloads), and node 1 leaves: by SIGTERM (it withdraws, then
// stops), by kill -9 of its weir (its pinned data plane forwards on, and
// the router keeps its route, stale, for the graceful restart time), and
// by its front link going down (a machine failure: only the BGP hold time,
// 3 s, tells the router). Once the route has moved every connection keeps
// going to the same backend, without a reset and without a byte lost or
// changed. Node 1 is brought back between the cases.
func TestClusterLabNodeLossKeepsConnections(t *testing.T) {
	const gr = 4 * time.Second
	c := startCluster(t, 3, gr)
	cases := []struct {
		name   string
		leave  func(t *testing.T)
		within time.Duration // the route's worst time to move
		// kept is how long at least the router must keep the route: after
		// kill -9, half the graceful restart time, during which node 1's
		// pinned data plane serves on without its weir.
		kept time.Duration
		back func(t *testing.T)
	}{{
		name:   "SIGTERM",
		leave:  func(t *testing.T) { c.nodes[0].proc.signal(t, syscall.SIGTERM) },
		within: 2 * time.Second,
		back: func(t *testing.T) {
			if err := c.nodes[0].proc.waitExit(t, 10*time.Second); err != nil {
				t.Errorf("node 1's weir exited with %v after SIGTERM, want status 0", err)
			}
			c.start(c.nodes[0])
		},
	}, {
		name:   "kill -9",
		leave:  func(t *testing.T) { c.nodes[0].proc.signal(t, syscall.SIGKILL) },
		within: gr + 3*time.Second,
		kept:   gr / 2,
		back: func(t *testing.T) {
			c.nodes[0].proc.waitExit(t, 5*time.Second)
			c.start(c.nodes[0])
		},
	}, {
		name: "front link down",
		leave: func(t *testing.T) {
			if _, err := c.l.Exec(lab.Node(1), "ip", "link", "set", lab.NodeFront, "down"); err != nil {
				t.Fatal(err)
			}
		},
		within: 3*time.Second + 3*time.Second,
		back: func(t *testing.T) {
			if _, err := c.l.Exec(lab.Node(1), "ip", "link", "set", lab.NodeFront, "up"); err != nil {
				t.Fatal(err)
			}
		},
	}}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.waitHops(t, "every node's route in place", 30*time.Second, c.all()...)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			conns, perNode := c.openLongConns(t, 200, stop, &wg)
			defer func() { close(stop); wg.Wait() }()
			if perNode[0] == 0 {
				t.Fatalf("no connection went through node 1: %v", perNode)
			}
			if behind := keptGoing(conns, marks(conns), 2, 10*time.Second); len(behind) > 0 {
				checkConns(t, "before node 1 left", conns, behind)
				t.FailNow()
			}
			left := time.Now()
			tc.leave(t)
			if tc.kept > 0 {
				// The route stays, and so node 1 still takes its share,
				// which its orphaned data plane serves: every connection
				// keeps going meanwhile.
				if behind := keptGoing(conns, marks(conns), 5, tc.kept); len(behind) > 0 {
					checkConns(t, "while the router kept node 1's route", conns, behind)
				}
				if hops, out := c.hops(t); !slices.Contains(hops, 1) {
					t.Errorf("the router dropped node 1's route within %v after it left, want it kept (graceful restart) for at least that:\n%s", time.Since(left), out)
				}
			}
			c.waitHops(t, "node 1's nexthop gone", tc.within-time.Since(left), 2, 3)
			took := time.Since(left)
			mark := marks(conns)
			kept := checkConns(t, "after the route moved", conns, keptGoing(conns, mark, 10, 30*time.Second))
			t.Logf("%s: node 1 had %d of %d connections (per node %v); its nexthop left the route after %v; %d of %d connections kept going to their backend",
				tc.name, perNode[0], len(conns), perNode, took.Round(time.Millisecond), kept, len(conns))
			if i < len(cases)-1 {
				close(stop)
				wg.Wait()
				stop = make(chan struct{}) // for the deferred close
				tc.back(t)
			}
		})
	}
}

// TestClusterLabNodeWithoutBackendsWithdraws cuts node 1's back link, its
// only way to the backends: its health checks fail, it withdraws the VIP,
// and every new flow goes to nodes 2 and 3, which can serve; with the link
// back it announces the VIP again.
func TestClusterLabNodeWithoutBackendsWithdraws(t *testing.T) {
	c := startCluster(t, 3, 10*time.Second)
	if _, err := c.l.Exec(lab.Node(1), "ip", "link", "set", lab.NodeBack, "down"); err != nil {
		t.Fatal(err)
	}
	took := c.waitHops(t, "node 1 withdrawn once its backends are unreachable", 5*time.Second, 2, 3)
	t.Logf("node 1's nexthop left the router's route %v after its back link went down", took)
	perNode, perBackend := c.newFlowsThrough(t, 90)
	t.Logf("90 new flows: per node %v, per backend %v", perNode, perBackend)
	if perNode[0] != 0 {
		t.Errorf("node 1, without backends, took %d of 90 new flows, want 0 (per node %v)", perNode[0], perNode)
	}
	for k := 2; k <= 3; k++ {
		if perNode[k-1] == 0 {
			t.Errorf("node %d took none of 90 new flows (per node %v)", k, perNode)
		}
	}
	if _, err := c.l.Exec(lab.Node(1), "ip", "link", "set", lab.NodeBack, "up"); err != nil {
		t.Fatal(err)
	}
	c.waitHops(t, "node 1 announcing again with its backends back", 10*time.Second, 1, 2, 3)
}

// exchange makes one new connection through the VIP from the client and
// checks it end to end: a backend's greeting, then the echo of line by the
// same backend.
func (c *clusterLab) exchange(line string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := c.l.Dial(ctx, lab.Client, "tcp4", clusterVIP.String())
	if err != nil {
		return fmt.Errorf("%s: %w", line, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	name := strings.TrimSuffix(greeting, "\n")
	if err != nil || !slices.Contains(lab.Backends[:], name) {
		return fmt.Errorf("%s: greeting %q: %v", line, greeting, err)
	}
	if _, err := io.WriteString(conn, "echo\n"+line+"\n"); err != nil {
		return fmt.Errorf("%s: write to %s: %w", line, name, err)
	}
	if answer, err := r.ReadString('\n'); err != nil || answer != name+" "+line+"\n" {
		return fmt.Errorf("%s: answer %q from %s: %v", line, answer, name, err)
	}
	return nil
}

// startLoad runs vipLoad's bounded loop against the VIP: workers each
// make exchanges one after the other, 10 ms apart (a pace that keeps the
// client's ports, held in TIME_WAIT for a minute, well within its range),
// until stop, two minutes or 20,000 connections.
func (c *clusterLab) startLoad(workers int, stop <-chan struct{}) *vipLoad {
	l := &vipLoad{}
	l.run(workers, 20_000, 10*time.Millisecond, stop, func(loop func() error) error { return loop() }, c.exchange)
	return l
}

// clusterRouteWatch polls the router every 20 ms, from its start until
// stop (at most three minutes), for node k's route to the VIP: a nexthop
// through the node in the kernel's ECMP route (what forwards the packets;
// by netlink, in the router's namespace) and, in a poller of its own, a
// route via the node in BIRD's table (by birdc, which takes longer). Each
// counts its polls and those that found the route missing.
type clusterRouteWatch struct {
	done chan struct{}
	wg   sync.WaitGroup

	kernel, bird routePolls
}

// routePolls is one poller's count.
type routePolls struct {
	polls, missing int
	firstMissing   string // what the first poll that missed it saw, and when
	errs           []error
}

func (c *clusterLab) watchRoute(t testing.TB, k int) *clusterRouteWatch {
	t.Helper()
	ns, err := netns.GetFromName(c.l.NS(lab.Router))
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		t.Fatalf("netlink in %s: %v", c.l.NS(lab.Router), err)
	}
	w := &clusterRouteWatch{done: make(chan struct{})}
	gw := lab.NodeFront4(k)
	dst := &net.IPNet{IP: net.IP(clusterVIP.Addr().AsSlice()), Mask: net.CIDRMask(32, 32)}
	w.poll(&w.kernel, func() (bool, string, error) {
		routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		if err != nil {
			return false, "", fmt.Errorf("list the router's routes to %s: %w", clusterRoute, err)
		}
		// One nexthop is the route's gateway, several its multipath.
		for _, r := range routes {
			if net.IP(gw.AsSlice()).Equal(r.Gw) {
				return true, "", nil
			}
			for _, nh := range r.MultiPath {
				if net.IP(gw.AsSlice()).Equal(nh.Gw) {
					return true, "", nil
				}
			}
		}
		return false, fmt.Sprint(routes), nil
	})
	via := "via " + gw.String() + " "
	w.poll(&w.bird, func() (bool, string, error) {
		out, err := c.l.Birdc("show", "route", clusterRoute)
		if err != nil && !strings.Contains(out, "Network not found") {
			return false, "", err
		}
		return strings.Contains(out, via), out, nil
	})
	go func() { w.wg.Wait(); h.Close() }()
	return w
}

// poll runs check every 20 ms (or as soon as the last one ended, if it
// took longer) until stop, counting in p.
func (w *clusterRouteWatch) poll(p *routePolls, check func() (found bool, saw string, err error)) {
	w.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			found, saw, err := check()
			switch {
			case err != nil:
				if len(p.errs) < 10 {
					p.errs = append(p.errs, err)
				}
			case !found:
				if p.missing == 0 {
					p.firstMissing = fmt.Sprintf("at %s:\n%s", time.Now().Format("15:04:05.000"), saw)
				}
				p.missing++
				p.polls++
			default:
				p.polls++
			}
		}
	})
}

func (w *clusterRouteWatch) stop() {
	close(w.done)
	w.wg.Wait()
}

// upgrade replaces node's weir by a new one as upgradeWeir does (how: a
// SIGHUP reload, or a SIGQUIT upgrade with the new weir started before or
// after the signal), following the successor by the pid file.
func (c *clusterLab) upgrade(t *testing.T, node *clusterNode, what, how string) {
	t.Helper()
	node.proc = upgradeWeir(t, what, node.proc, how, node.pidFile, node.log, func() *weirProc {
		return runWeir(c.t, c.l.Command(lab.Node(node.k), os.Args[0], "-u", "-c", node.conf), node.log)
	})
}

// TestClusterLabUpgradesKeepTheRoute is the test 6 on the cluster:
// node 1 of three is upgraded 5 times (SIGQUIT upgrades in both orders
// and SIGHUP reloads, graceful restart on at every weir and at the
// router) while new connections through the VIP are made all along, each
// checked end to end, and 60 long-lived connections (echoes and slow
// downloads) spread over the nodes stay open. The router's route never
// loses node 1's nexthop, in the kernel nor in BIRD's table (polled every
// 20 ms), and BIRD's log shows 5 graceful restarts of node 1's session,
// each ended by the new weir's End-of-RIB, and no route removed; not one
// new connection fails, every long-lived one keeps going to its backend,
// node 1 takes new flows after each upgrade and, after the five, still its
// third of them (by its pinned data plane's counters, which the new weirs
// take over).
func TestClusterLabUpgradesKeepTheRoute(t *testing.T) {
	// Health checks that a loaded 2-CPU machine running -race binaries
	// does not fail by accident: a node whose checks flap withdraws.
	const interval = 500 * time.Millisecond
	c := startClusterWith(t, 3, clusterOptions{gracefulRestart: 30 * time.Second, interval: interval, timeout: interval, failures: 3})
	node := c.nodes[0]
	t.Cleanup(func() {
		// A reload's successor, which no runWeir kills.
		if pid := readPID(node.pidFile); pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	lines := birdLogLines(t, c.l.BirdLog())
	// The lab's BIRD traces routes: a removal would be in its log.
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.Contains(l, "n1.ipv4 > added") && strings.Contains(l, clusterRoute)
	}) {
		t.Fatalf("BIRD's log does not trace node 1's route, added:\n%s", strings.Join(lines, "\n"))
	}
	logStart := len(lines)

	stopConns := make(chan struct{})
	var wg sync.WaitGroup
	conns, longPerNode := c.openLongConns(t, 60, stopConns, &wg)
	defer func() { close(stopConns); wg.Wait() }()
	if longPerNode[0] == 0 {
		t.Fatalf("no long-lived connection went through node 1: %v", longPerNode)
	}
	if behind := keptGoing(conns, marks(conns), 2, 10*time.Second); len(behind) > 0 {
		checkConns(t, "before the upgrades", conns, behind)
		t.FailNow()
	}

	watch := c.watchRoute(t, 1)
	stopLoad := make(chan struct{})
	load := c.startLoad(2, stopLoad)
	flowsBefore := c.flowCounts(t)
	began := time.Now()
	steps := []string{"SIGQUIT, new weir first", "SIGHUP", "SIGQUIT first", "SIGHUP", "SIGQUIT, new weir first"}
	var toEOR []time.Duration // from each step's start to BIRD's "graceful restart done"
	for i, step := range steps {
		what := fmt.Sprintf("step %d (%s)", i+1, step)
		start := time.Now()
		c.upgrade(t, node, what, step)
		// The new weir's End-of-RIB ends BIRD's graceful restart of the
		// session; the next step comes after it.
		var done string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			all := birdLogLines(t, c.l.BirdLog())[logStart:]
			if dones := grepBIRDLog(all, "n1: Neighbor graceful restart done"); len(dones) == i+1 {
				done = dones[i]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: BIRD's graceful restart of node 1's session not done within 20 s:\n%s", what, strings.Join(all, "\n"))
			}
		}
		toEOR = append(toEOR, testenv.BIRDLogTime(t, done).Sub(start))
		// Then the new weir's data plane takes new flows, and the load
		// goes on.
		n1, ok := c.newFlows(t, 1), load.ok.Load()
		for deadline := time.Now().Add(10 * time.Second); c.newFlows(t, 1) < n1+10 || load.ok.Load() < ok+50; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: within 10 s of BIRD's End-of-RIB, node 1 took %d new flows (want 10) and the load made %d connections (want 50)",
					what, c.newFlows(t, 1)-n1, load.ok.Load()-ok)
			}
		}
	}
	close(stopLoad)
	load.wg.Wait()
	watch.stop()
	elapsed := time.Since(began)
	flowsDuring := c.flowCounts(t)
	for i := range flowsDuring {
		flowsDuring[i] -= flowsBefore[i]
	}

	for _, p := range []struct {
		what string
		*routePolls
	}{{"the router's kernel route", &watch.kernel}, {"BIRD's table", &watch.bird}} {
		if len(p.errs) > 0 {
			t.Fatalf("polling %s: %v", p.what, errors.Join(p.errs...))
		}
		if p.missing > 0 || p.polls < 100 {
			t.Errorf("node 1's route was missing from %s in %d of %d polls across the upgrades, want 0 of at least 100; the first %s",
				p.what, p.missing, p.polls, p.firstMissing)
		}
	}
	if n := load.failed.Load(); n > 0 || load.ok.Load() == 0 {
		t.Errorf("%d of %d new connections through the VIP failed across the upgrades, want 0: %v", n, n+load.ok.Load(), errors.Join(load.errs...))
	}
	kept := checkConns(t, "after the upgrades", conns, keptGoing(conns, marks(conns), 5, 15*time.Second))

	lines = birdLogLines(t, c.l.BirdLog())[logStart:]
	removed := slices.ContainsFunc(lines, routeRemoved)
	detected := len(grepBIRDLog(lines, "n1: Neighbor graceful restart detected"))
	done := len(grepBIRDLog(lines, "n1: Neighbor graceful restart done"))
	if removed || detected != len(steps) || done != len(steps) {
		t.Errorf("BIRD's log across the upgrades: a route removed: %v (want none), node 1's graceful restarts: %d detected and %d done (want %d):\n%s",
			removed, detected, done, len(steps), strings.Join(lines, "\n"))
	}
	gaps := restartGaps(t, grepBIRDLog(lines, "n1: Neighbor graceful restart"))

	// After the five, node 1 still forwards its third of new flows.
	perNode, perBackend := c.newFlowsThrough(t, 300)
	if want := uint64(300 / c.n); perNode[0] < want/2 || perNode[0] > want*3/2 {
		t.Errorf("after the upgrades node 1 forwarded %d of 300 new flows, want %d ± 50%% (all: %v)", perNode[0], want, perNode)
	}
	t.Logf("%d upgrades of node 1 in %v: its nexthop in the router's kernel route in %d of %d polls and its route in BIRD's table in %d of %d; "+
		"%d new connections through the VIP (per node %v), %d failed; %d of %d long-lived connections (%d through node 1) kept going; "+
		"step start to End-of-RIB %v (median %v), session closed to End-of-RIB %v; then 300 new flows per node %v, per backend %v",
		len(steps), elapsed.Round(time.Millisecond), watch.kernel.polls-watch.kernel.missing, watch.kernel.polls, watch.bird.polls-watch.bird.missing, watch.bird.polls,
		load.ok.Load(), flowsDuring, load.failed.Load(), kept, len(conns), longPerNode[0], toEOR, median(toEOR), gaps, perNode, perBackend)

	// A real withdrawal is in the log, as the check above looks for it:
	// SIGTERM to node 1's last weir.
	logStart += len(lines)
	node.proc.signal(t, syscall.SIGTERM)
	c.waitHops(t, "node 1's nexthop gone after SIGTERM", 5*time.Second, 2, 3)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines = birdLogLines(t, c.l.BirdLog())[logStart:]
		if slices.ContainsFunc(lines, routeRemoved) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD's log shows no removal of node 1's route after SIGTERM withdrew it:\n%s", strings.Join(lines, "\n"))
		}
	}
}

// routeRemoved reports whether a line of BIRD's log traces the removal
// of a node's route to the VIP.
func routeRemoved(line string) bool {
	return strings.Contains(line, clusterRoute) && (strings.Contains(line, "removed") || strings.Contains(line, "withdrawn"))
}
