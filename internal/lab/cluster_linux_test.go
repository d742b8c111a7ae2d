package lab

import (
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestClusterLabTopology builds the cluster lab of three nodes and checks
// what the tests on it rely on: the client reaches the backends through
// the router, and so does each node over its back network, which is its
// only way there (no default route); the router hashes ECMP routes on
// L4 ports while the host's sysctl stays as it was; BIRD runs in the
// router with a passive session per node; and down leaves no namespace,
// pinned directory, state directory or BIRD behind.
func TestClusterLabTopology(t *testing.T) {
	hostPolicy, _ := os.ReadFile("/proc/sys/net/ipv4/fib_multipath_hash_policy")
	var name string
	var pins []string
	t.Run("up", func(t *testing.T) {
		l := UpCluster(t, 3)
		name = l.Name()
		// What a node's weir pins: down removes it.
		for k := 1; k <= 3; k++ {
			pins = append(pins, l.NodePinPath(k))
			if err := os.MkdirAll(l.NodePinPath(k)+"/weir_v1_test", 0o700); err != nil {
				t.Fatal(err)
			}
		}
		from := []string{Client, Node(1), Node(2), Node(3)}
		for i, role := range Backends {
			ap := netip.AddrPortFrom(BackendAddr4(i), 7).String()
			ln, err := l.Listen(role, "tcp", ap)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					io.WriteString(c, c.RemoteAddr().String())
					c.Close()
				}
			}()
			for _, src := range from {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				c, err := l.Dial(ctx, src, "tcp4", ap)
				cancel()
				if err != nil {
					t.Fatalf("%s → %s: %v", src, ap, err)
				}
				c.SetDeadline(time.Now().Add(3 * time.Second))
				got, err := io.ReadAll(c)
				c.Close()
				if err != nil || len(got) == 0 {
					t.Errorf("%s → %s: read %q, %v", src, ap, got, err)
				}
			}
			ln.Close()
		}
		for k := 1; k <= 3; k++ {
			routes, err := l.Exec(Node(k), "ip", "-4", "route", "show", "default")
			if err != nil || strings.TrimSpace(routes) != "" {
				t.Errorf("node %d has a default route (%v): %s", k, err, routes)
			}
			addrs, err := l.Exec(Node(k), "ip", "-4", "-brief", "addr")
			for _, want := range []string{NodeFront + "@", NodeFront4(k).String() + "/25", NodeBack + "@", NodeBack4(k).String() + "/24"} {
				if err != nil || !strings.Contains(addrs, want) {
					t.Errorf("node %d lacks %s (%v):\n%s", k, want, err, addrs)
				}
			}
		}
		policy, err := l.Exec(Router, "sysctl", "-n", "net.ipv4.fib_multipath_hash_policy")
		if err != nil || strings.TrimSpace(policy) != "1" {
			t.Errorf("router's fib_multipath_hash_policy = %q (%v), want 1", policy, err)
		}
		protos, err := l.Birdc("show", "protocols")
		if err != nil {
			t.Fatal(err)
		}
		for k := 1; k <= 3; k++ {
			if !strings.Contains(protos, Node(k)+" ") || !strings.Contains(protos, "Passive") {
				t.Errorf("BIRD has no passive session n%d:\n%s", k, protos)
			}
		}
		if strings.Contains(protos, "n4 ") {
			t.Errorf("BIRD has a session for a fourth node in a lab of three:\n%s", protos)
		}
	})
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/fib_multipath_hash_policy"); string(after) != string(hostPolicy) {
		t.Errorf("the host's fib_multipath_hash_policy changed from %q to %q", hostPolicy, after)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || strings.Contains(string(out), name) {
		t.Errorf("namespaces of lab %s remain (%v):\n%s", name, err, out)
	}
	for _, pin := range pins {
		if _, err := os.Stat(pin); !os.IsNotExist(err) {
			t.Errorf("a node's pin directory %s remains: %v", pin, err)
		}
	}
	if _, err := os.Stat("/run/weir-lab/" + name); !os.IsNotExist(err) {
		t.Errorf("lab %s's state directory remains: %v", name, err)
	}
	if out, _ := exec.Command("pgrep", "-f", "/run/weir-lab/"+name+"/").CombinedOutput(); len(out) > 0 {
		t.Errorf("lab %s's BIRD still runs: pid %s", name, out)
	}
}
