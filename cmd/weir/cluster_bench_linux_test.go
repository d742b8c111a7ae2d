package main

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/lab"
)

// BenchmarkClusterLab measures the cluster lab of three nodes (run it
// once: -benchtime 1x; scripts/bench-cluster does): new connections per
// second through the VIP with one node announcing it and with all three,
// and to a backend directly (the lab's floor);
// and how long the router goes on choosing a node after its weir gets
// SIGTERM, or kill -9 with and without graceful restart (the median of
// repeated runs each, in ms). Every node, the router, the backends and the
// client share the machine's CPUs: see BENCHMARKS.md for what bounds the
// figures.
func BenchmarkClusterLab(b *testing.B) {
	const gr = 10 * time.Second // examples/lab-cluster.yaml's
	c := startCluster(b, 3, gr)
	if _, err := c.l.Exec(lab.Client, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"); err != nil {
		b.Fatal(err)
	}
	const window = 3 * time.Second
	b.ReportMetric(c.connRate(b, clusterVIP.String(), window), "conn/s-3nodes")
	// The lab's floor: the same connections to backend b1's own address,
	// routed by the router, no node on the way.
	b.ReportMetric(c.connRate(b, netip.AddrPortFrom(lab.BackendAddr4(0), 80).String(), window), "conn/s-direct")

	// One node: the other two withdraw (SIGTERM) and come back after.
	for _, k := range []int{2, 3} {
		c.nodes[k-1].proc.signal(b, syscall.SIGTERM)
	}
	c.waitHops(b, "nodes 2 and 3 withdrawn", 5*time.Second, 1)
	b.ReportMetric(c.connRate(b, clusterVIP.String(), window), "conn/s-1node")
	for _, k := range []int{2, 3} {
		c.nodes[k-1].proc.waitExit(b, 10*time.Second)
		c.start(c.nodes[k-1])
	}

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

// connRate opens connections to addr (the VIP, or a backend) from the
// client, 32 at a time, for window, each read its backend's greeting and
// closed, and returns how many per second succeeded; a failure fails b.
func (c *clusterLab) connRate(b testing.TB, addr string, window time.Duration) float64 {
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
	return float64(ok.Load()) / elapsed.Seconds()
}
