package lab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/internal/testenv"
)

// Lab is a running lab.
type Lab struct {
	name   string
	attach string
	nodes  int // the cluster lab's node count; 0 for the one-balancer lab
}

// Up creates a lab named after t and removes it when t ends. It skips (or
// fails, in CI) when not root.
func Up(t testing.TB) *Lab {
	t.Helper()
	return UpFor(t, "tc")
}

// UpFor is Up for a weir whose BPF data plane runs at attach ("tc", "xdp"
// or "auto", as bpf.attach): xdp and auto build the routed lab that
// `scripts/lab up --attach` does, which XDP can forward through.
func UpFor(t testing.TB, attach string) *Lab {
	t.Helper()
	testenv.NeedRoot(t)
	l := &Lab{name: Name(t.Name()), attach: attach}
	l.script("down") // a lab left by a killed run of the same test
	if out, err := l.script("up"); err != nil {
		t.Fatalf("scripts/lab up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := l.script("down"); err != nil {
			t.Errorf("scripts/lab down: %v\n%s", err, out)
		}
	})
	return l
}

// UpCluster creates the cluster lab of n nodes (2 to MaxNodes; scripts/lab
// up --nodes n) named after t, with BIRD running in the router, and
// removes it when t ends. Its roles are Client, Router, Node(1)..Node(n)
// and B1..B3. It skips (or fails, in CI) when not root or without BIRD.
func UpCluster(t testing.TB, n int) *Lab {
	t.Helper()
	testenv.NeedRoot(t)
	for _, tool := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, fmt.Sprintf("the cluster lab needs %s (Debian package bird2; scripts/provision installs it): %v", tool, err))
		}
	}
	if n < 2 || n > MaxNodes {
		t.Fatalf("lab.UpCluster: %d nodes, want 2 to %d", n, MaxNodes)
	}
	l := &Lab{name: Name(t.Name()), attach: "tc", nodes: n}
	l.script("down")
	if out, err := l.script("up"); err != nil {
		t.Fatalf("scripts/lab up --nodes %d: %v\n%s", n, err, out)
	}
	t.Cleanup(func() {
		if out, err := l.script("down"); err != nil {
			t.Errorf("scripts/lab down: %v\n%s", err, out)
		}
	})
	return l
}

func (l *Lab) script(cmd string) (string, error) {
	args := []string{Script(), cmd, "--name", l.name, "--attach", l.attach}
	if l.nodes > 0 && cmd == "up" {
		args = append(args, "--nodes", fmt.Sprint(l.nodes))
	}
	out, err := exec.Command("bash", args...).CombinedOutput()
	return string(out), err
}

// Nodes is the cluster lab's node count, 0 in the one-balancer lab.
func (l *Lab) Nodes() int { return l.nodes }

// NodePinPath is the bpffs directory node k's weir should pin under;
// scripts/lab down removes it.
func (l *Lab) NodePinPath(k int) string { return "/sys/fs/bpf/" + l.name + "-" + Node(k) }

// Birdc runs a command of the cluster lab's BIRD (birdc with the lab's
// control socket, as scripts/lab exec router birdc does) and returns its
// output. birdc needs only the socket, not the router's namespace: it
// runs as it is, the quicker to poll.
func (l *Lab) Birdc(args ...string) (string, error) {
	sock := l.stateDir() + "/bird.ctl"
	out, err := exec.Command("birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc -s %s %s: %w: %s", sock, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// BirdLog is the path of the cluster lab's BIRD log: every session's
// state changes, graceful restarts and route changes, each line stamped
// with the local time to the millisecond ("2006-01-02 15:04:05.000").
func (l *Lab) BirdLog() string { return l.stateDir() + "/bird.log" }

// stateDir holds BIRD's configuration, control socket and log (scripts/lab's
// state_dir).
func (l *Lab) stateDir() string { return "/run/weir-lab/" + l.name }

// Attach is the hook the lab was built for: "tc", "xdp" or "auto".
func (l *Lab) Attach() string { return l.attach }

// BackendInterfaces are the balancer's interfaces towards the backends:
// the bridge br0, or in a routed lab (Attach xdp or auto) the veths b1-b3.
func (l *Lab) BackendInterfaces() []string {
	if l.attach == "tc" {
		return []string{"br0"}
	}
	return []string{"b1", "b2", "b3"}
}

// Name is the lab's name, the prefix of its namespaces.
func (l *Lab) Name() string { return l.name }

// NS is the name of role's namespace.
func (l *Lab) NS(role string) string { return l.name + "-" + role }

// PinPath is the bpffs directory a weir in this lab should pin under;
// scripts/lab down removes it.
func (l *Lab) PinPath() string { return "/sys/fs/bpf/" + l.name + "-lab" }

// Do runs f on an OS thread inside role's network namespace. Sockets f
// opens stay in that namespace for their whole life, whichever goroutine
// uses them later.
func (l *Lab) Do(role string, f func() error) error {
	ns, err := netns.GetFromName(l.NS(role))
	if err != nil {
		return fmt.Errorf("namespace %s: %w", l.NS(role), err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("read this thread's namespace: %w", err)
			return
		}
		defer home.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter %s: %w", l.NS(role), err)
			return
		}
		errc <- f()
		// Only a thread back home may serve other goroutines; one that
		// cannot return stays locked and exits with this goroutine.
		if netns.Set(home) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return <-errc
}

// Listen opens a listener inside role's namespace.
func (l *Lab) Listen(role, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(role, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket inside role's namespace.
func (l *Lab) ListenPacket(role, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := l.Do(role, func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Dial connects from inside role's namespace.
func (l *Lab) Dial(ctx context.Context, role, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := l.Do(role, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Command returns a command that runs inside role's network namespace.
// The balancer's and the cluster nodes' keep the host's mount namespace
// (nsenter), so that a weir there sees the host's bpffs; the others use
// ip netns exec.
func (l *Lab) Command(role string, name string, args ...string) *exec.Cmd {
	if role == Balancer || isNode(role) {
		return exec.Command("nsenter", append([]string{"--net=/run/netns/" + l.NS(role), name}, args...)...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", l.NS(role), name}, args...)...)
}

// Exec runs a command inside role's namespace and returns its output.
func (l *Lab) Exec(role string, name string, args ...string) (string, error) {
	out, err := l.Command(role, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), l.NS(role), err, out)
	}
	return string(out), nil
}

// isNode reports whether role is a cluster node's, Node(1) to
// Node(MaxNodes).
func isNode(role string) bool {
	for k := 1; k <= MaxNodes; k++ {
		if role == Node(k) {
			return true
		}
	}
	return false
}
