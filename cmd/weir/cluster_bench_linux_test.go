package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/lab"
)

// BenchmarkClusterLab measures the cluster lab of three nodes (run it
// once: -benchtime 1x; scripts/bench-cluster does): new connections per
// second through the VIP with one node announcing it and with all three,
// and to a backend directly (the lab's floor); what each node spends on
// them: its data plane's packets (the runs of its BPF program) and their
// CPU time, from the kernel's BPF run-time statistics, and its weir
// process's CPU time; and how long the router goes on choosing a node
// after its weir gets SIGTERM, or kill -9 with and without graceful
// restart (the median of repeated runs each, in ms). Every node, the
// router, the backends and the client share the machine's CPUs: see
// BENCHMARKS.md for what bounds the figures.
func BenchmarkClusterLab(b *testing.B) {
	const gr = 10 * time.Second // examples/lab-cluster.yaml's
	c := startCluster(b, 3, gr)
	if _, err := c.l.Exec(lab.Client, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"); err != nil {
		b.Fatal(err)
	}
	// The kernel times every BPF program's runs while a holder of run-time
	// statistics keeps them on: this one, until the benchmark ends
	// (kernel.bpf_stats_enabled, the sysctl, is left alone).
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("turn on the kernel's BPF run-time statistics: %v", err)
	}
	defer stats.Close()

	const window = 3 * time.Second
	// What the nodes spend with no client: BGP, health checks.
	idle := c.measure(b, "idle", "", window, c.all()...)
	three := c.measure(b, "3 nodes", clusterVIP.String(), window, c.all()...)
	// The lab's floor: the same connections to backend b1's own address,
	// routed by the router, no node on the way.
	b.ReportMetric(c.connRate(b, netip.AddrPortFrom(lab.BackendAddr4(0), 80).String(), window), "conn/s-direct")

	// One node: the other two withdraw (SIGTERM) and stop; they come
	// back after.
	for _, k := range []int{2, 3} {
		c.nodes[k-1].proc.signal(b, syscall.SIGTERM)
	}
	c.waitHops(b, "nodes 2 and 3 withdrawn", 5*time.Second, 1)
	for _, k := range []int{2, 3} {
		c.nodes[k-1].proc.waitExit(b, 10*time.Second)
	}
	one := c.measure(b, "1 node", clusterVIP.String(), window, 1)
	for _, k := range []int{2, 3} {
		c.start(c.nodes[k-1])
	}
	for _, r := range []loadRun{three, one} {
		suffix := "-" + strings.ReplaceAll(r.what, " ", "") // -3nodes, -1node
		b.ReportMetric(r.rate(), "conn/s"+suffix)
		b.ReportMetric(r.packetsPerConn(), "pkt/conn"+suffix)
		b.ReportMetric(r.nsPerPacket(), "bpf-ns/pkt"+suffix)
		b.ReportMetric(r.nsPerConn(), "bpf-ns/conn"+suffix)
		b.ReportMetric(float64(r.weirCPU())/1e6, "weir-cpu-ms"+suffix)
	}
	lo, hi := three.shares()
	b.ReportMetric(100*lo, "min-share%-3nodes")
	b.ReportMetric(100*hi, "max-share%-3nodes")
	b.ReportMetric(float64(idle.packets())/idle.elapsed.Seconds(), "pkt/s-idle")
	b.ReportMetric(float64(idle.weirCPU())/1e6, "weir-cpu-ms-idle")

	leave := func(what string, runs int, sig syscall.Signal, within time.Duration) time.Duration {
		var took []time.Duration
		for range runs {
			c.waitHops(b, "every node's route in place", 30*time.Second, c.all()...)
			n1 := c.nodes[0]
			n1.proc.signal(b, sig)
			took = append(took, c.waitHops(b, "node 1 gone after "+what, within, 2, 3))
			n1.proc.waitExit(b, 10*time.Second)
			c.start(n1)
		}
		slices.Sort(took)
		b.Logf("%s: node 1's nexthop left the router's route after %v (sorted)", what, took)
		return took[len(took)/2]
	}
	b.ReportMetric(float64(leave("SIGTERM", 5, syscall.SIGTERM, 5*time.Second))/1e6, "ms-SIGTERM")
	b.ReportMetric(float64(leave("kill -9, graceful_restart 10s", 3, syscall.SIGKILL, gr+5*time.Second))/1e6, "ms-kill9-gr10s")
	// The same without graceful restart: node 1's configuration turns it
	// off, and the router drops the routes when the session's TCP
	// connection closes.
	c.waitHops(b, "every node's route in place", 30*time.Second, c.all()...)
	n1 := c.nodes[0]
	conf, err := os.ReadFile(n1.conf)
	if err != nil {
		b.Fatal(err)
	}
	off := strings.Replace(string(conf), "graceful_restart: 10s", "graceful_restart: 0s", 1)
	if err := os.WriteFile(n1.conf, []byte(off), 0o644); err != nil {
		b.Fatal(err)
	}
	n1.proc.signal(b, syscall.SIGTERM)
	n1.proc.waitExit(b, 10*time.Second)
	c.start(n1)
	b.ReportMetric(float64(leave("kill -9, no graceful restart", 5, syscall.SIGKILL, 5*time.Second))/1e6, "ms-kill9-nogr")
}

// connRate opens connections to addr from the client for window (see
// load) and returns how many per second succeeded.
func (c *clusterLab) connRate(b testing.TB, addr string, window time.Duration) float64 {
	b.Helper()
	n, elapsed := c.load(b, addr, window)
	return float64(n) / elapsed.Seconds()
}

// load opens connections to addr (the VIP, or a backend) from the
// client, 32 at a time, for window, each read its backend's greeting and
// closed, and returns how many succeeded and in how long; a failure fails
// b.
func (c *clusterLab) load(b testing.TB, addr string, window time.Duration) (int64, time.Duration) {
	b.Helper()
	const workers = 32
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(window)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One namespace switch per worker: sockets take the namespace
			// of the thread that makes them.
			c.l.Do(lab.Client, func() error {
				buf := make([]byte, 16)
				for time.Now().Before(deadline) {
					conn, err := net.DialTimeout("tcp4", addr, 3*time.Second)
					if err != nil {
						failed.Add(1)
						continue
					}
					conn.SetDeadline(time.Now().Add(3 * time.Second))
					if _, err := conn.Read(buf); err != nil {
						failed.Add(1)
					} else {
						ok.Add(1)
					}
					conn.Close()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d connections failed", f, f+ok.Load())
	}
	return ok.Load(), elapsed
}

// nodeCost is what a node spent, or (as a difference) spent over a run:
// its data plane's packets (every run of its BPF programs is one packet
// arriving at one of its interfaces) and those runs' CPU time, as the
// kernel's BPF run-time statistics count them; its weir process's CPU
// time (user and system: the control plane, which forwards nothing); and
// the new flows its data plane counted for the VIP's service.
type nodeCost struct {
	live    bool // its weir runs: weir and flows are read
	packets uint64
	bpf     time.Duration
	weir    time.Duration
	flows   uint64
}

func (n nodeCost) sub(m nodeCost) nodeCost {
	return nodeCost{live: n.live, packets: n.packets - m.packets, bpf: n.bpf - m.bpf, weir: n.weir - m.weir, flows: n.flows - m.flows}
}

// loadRun is one measured window: the connections made through it (none
// for an idle one) and what each node spent meanwhile.
type loadRun struct {
	what    string // "idle", "3 nodes", "1 node"
	conns   int64
	elapsed time.Duration
	nodes   []nodeCost // nodes[k-1] is node k's
}

// measure opens connections to addr for window (none if addr is empty:
// an idle window) and returns what every node spent meanwhile, logging it
// node by node; live are the nodes whose weir runs. The slow reads of
// the new flow counters (each opens a node's data plane) stay outside
// the window.
func (c *clusterLab) measure(b testing.TB, what, addr string, window time.Duration, live ...int) loadRun {
	b.Helper()
	r := loadRun{what: what}
	var flows0 []uint64
	if addr != "" {
		flows0 = c.liveFlows(b, live)
	}
	before := c.costs(b, live)
	if addr == "" {
		start := time.Now()
		time.Sleep(window)
		r.elapsed = time.Since(start)
	} else {
		r.conns, r.elapsed = c.load(b, addr, window)
	}
	after := c.costs(b, live)
	for k := 1; k <= c.n; k++ {
		r.nodes = append(r.nodes, after[k-1].sub(before[k-1]))
	}
	if addr != "" {
		for k, f := range c.liveFlows(b, live) {
			r.nodes[k].flows = f - flows0[k]
		}
	}
	r.log(b)
	return r
}

// costs reads every node's BPF statistics, and the CPU time of the live
// nodes' weirs, indexed by node - 1.
func (c *clusterLab) costs(b testing.TB, live []int) []nodeCost {
	b.Helper()
	out := make([]nodeCost, c.n)
	for k := 1; k <= c.n; k++ {
		out[k-1].packets, out[k-1].bpf = c.bpfRuns(b, k)
	}
	for _, k := range live {
		out[k-1].live = true
		out[k-1].weir = processCPU(b, c.nodes[k-1].proc.cmd.Process.Pid)
	}
	return out
}

// liveFlows reads the live nodes' new flow counts, indexed by node - 1
// (0 for the others).
func (c *clusterLab) liveFlows(b testing.TB, live []int) []uint64 {
	b.Helper()
	out := make([]uint64, c.n)
	for _, k := range live {
		out[k-1] = c.newFlows(b, k)
	}
	return out
}

// bpfRuns sums the run counts and run times of node k's BPF programs:
// those its pinned links (tcx or XDP, link_* under its pin path) run,
// each once however many links run it. A node without pins (its weir
// stopped and took its data plane along) has none.
func (c *clusterLab) bpfRuns(b testing.TB, k int) (uint64, time.Duration) {
	b.Helper()
	pin := c.l.NodePinPath(k)
	entries, err := os.ReadDir(pin)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0
	}
	if err != nil {
		b.Fatalf("node %d's data plane: %v", k, err)
	}
	progs := map[ebpf.ProgramID]bool{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "link_") {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(pin, e.Name()), nil)
		if err != nil {
			b.Fatalf("node %d: load pinned link: %v", k, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			b.Fatalf("node %d: inspect pinned link %s: %v", k, e.Name(), err)
		}
		progs[info.Program] = true
	}
	var runs uint64
	var took time.Duration
	for id := range progs {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			b.Fatalf("node %d: open program %d: %v", k, id, err)
		}
		st, err := p.Stats()
		p.Close()
		if err != nil {
			b.Fatalf("node %d: statistics of program %d: %v", k, id, err)
		}
		runs += st.RunCount
		took += st.Runtime
	}
	return runs, took
}

// userHZ is the unit of /proc/PID/stat's utime and stime: 100 per second
// on every architecture Go runs Linux on.
const userHZ = 100

// processCPU returns the CPU time (user and system, every thread's) that
// the process pid has used so far, to 10 ms. It checks that pid runs this
// test binary, as weir: not nsenter, which execs it.
func processCPU(b testing.TB, pid int) time.Duration {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != self {
		b.Fatalf("process %d runs %q (%v), not weir (%s)", pid, exe, err, self)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis, from field 3
	// (state) on; utime and stime are fields 14 and 15.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %q: %v", pid, stat, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ
}

func (r loadRun) packets() uint64 {
	var n uint64
	for _, c := range r.nodes {
		n += c.packets
	}
	return n
}

func (r loadRun) bpf() time.Duration {
	var d time.Duration
	for _, c := range r.nodes {
		d += c.bpf
	}
	return d
}

// weirCPU is the live nodes' weirs' CPU time together.
func (r loadRun) weirCPU() time.Duration {
	var d time.Duration
	for _, c := range r.nodes {
		d += c.weir
	}
	return d
}

func (r loadRun) rate() float64 { return float64(r.conns) / r.elapsed.Seconds() }

func (r loadRun) packetsPerConn() float64 { return float64(r.packets()) / float64(r.conns) }

// nsPerPacket is the BPF programs' mean CPU time per packet, every node's.
func (r loadRun) nsPerPacket() float64 { return float64(r.bpf()) / float64(r.packets()) }

// nsPerConn is the BPF programs' CPU time per connection: one node's
// cost for each connection it forwards.
func (r loadRun) nsPerConn() float64 { return float64(r.bpf()) / float64(r.conns) }

// shares are the smallest and largest share of the packets a live node
// got.
func (r loadRun) shares() (lo, hi float64) {
	lo = 1
	for _, c := range r.nodes {
		if !c.live {
			continue
		}
		s := float64(c.packets) / float64(r.packets())
		lo, hi = min(lo, s), max(hi, s)
	}
	return lo, hi
}

// log writes r node by node (scripts/bench-cluster prints these lines).
func (r loadRun) log(b testing.TB) {
	b.Helper()
	secs := r.elapsed.Seconds()
	if r.conns > 0 {
		b.Logf("data plane, %s: %d connections in %.2f s (%.0f/s): %.2f packets and %.0f ns of BPF program per connection, %.0f ns per packet",
			r.what, r.conns, secs, r.rate(), r.packetsPerConn(), r.nsPerConn(), r.nsPerPacket())
	}
	for i, c := range r.nodes {
		line := fmt.Sprintf("data plane, %s: node %d: %d packets (%.0f/s", r.what, i+1, c.packets, float64(c.packets)/secs)
		if r.conns > 0 {
			line += fmt.Sprintf(", %.1f%% of all", 100*float64(c.packets)/float64(r.packets()))
		}
		line += ")"
		if c.packets > 0 {
			line += fmt.Sprintf(", %.0f ns/packet", float64(c.bpf)/float64(c.packets))
		}
		line += fmt.Sprintf(", %.2f ms in its BPF program (%.2f%% of a CPU)", float64(c.bpf)/1e6, 100*c.bpf.Seconds()/secs)
		switch {
		case !c.live:
			line += "; weir stopped"
		case r.conns > 0:
			line += fmt.Sprintf("; %d new flows (%.1f%%); weir %d ms CPU", c.flows, 100*float64(c.flows)/float64(r.conns), c.weir.Milliseconds())
		default:
			line += fmt.Sprintf("; weir %d ms CPU", c.weir.Milliseconds())
		}
		b.Logf("%s", line)
	}
}
