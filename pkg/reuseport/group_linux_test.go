package reuseport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"golang.org/x/sys/unix"
)

// steered opens a group of k sockets on loopback with steering under a
// private bpffs, inheriting from, and activates it.
func steered(t *testing.T, pin string, k int, from []net.Listener) *Group {
	t.Helper()
	addr := "127.0.0.1:0"
	if len(from) > 0 {
		addr = from[0].Addr().String()
	}
	g, err := Open("tcp", addr, from, Config{Sockets: k, PinPath: pin})
	if err != nil {
		t.Fatalf("Open(%d sockets): %v", k, err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.Steering(); err != nil {
		t.Fatalf("no steering as root: %v", err)
	}
	if err := g.Activate(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if got := len(g.Listeners()); got != k {
		t.Fatalf("%d listeners, want %d", got, k)
	}
	return g
}

// handOver duplicates g's members as a predecessor's upgrade does.
func handOver(t *testing.T, g *Group) []net.Listener {
	t.Helper()
	var out []net.Listener
	for _, ln := range g.Listeners() {
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		dup, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, dup)
	}
	return out
}

// dialN opens n connections to addr and sends each its index.
func dialN(t *testing.T, addr net.Addr, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "%04d", i)
		conns[i] = c
	}
	return conns
}

// acceptCounts accepts want connections across lns (each within a
// deadline) and reports how many each listener took; every accepted
// connection must carry a distinct index from dialN.
func acceptCounts(t *testing.T, lns []net.Listener, want int) []int {
	t.Helper()
	counts := make([]int, len(lns))
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Second)
	done := make(chan struct{})
	var total int
	for i, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ln.(*net.TCPListener).SetDeadline(deadline)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 4)
				c.SetReadDeadline(deadline)
				_, err = io.ReadFull(c, buf)
				c.Close()
				mu.Lock()
				if err == nil && !seen[string(buf)] {
					seen[string(buf)] = true
					counts[i]++
					total++
					if total == want {
						close(done)
					}
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
	}
	for _, ln := range lns {
		ln.(*net.TCPListener).SetDeadline(time.Now())
	}
	wg.Wait()
	for _, ln := range lns {
		ln.(*net.TCPListener).SetDeadline(time.Time{})
	}
	if total != want {
		t.Fatalf("accepted %d connections with their data, want %d (per listener %v)", total, want, counts)
	}
	return counts
}

func TestSteeringSpreadsOverEveryMember(t *testing.T) {
	pin := filepath.Join(testenv.BPFFS(t), "weir")
	g := steered(t, pin, 4, nil)
	dialN(t, net.TCPAddrFromAddrPort(g.Addr()), 200)
	counts := acceptCounts(t, g.Listeners(), 200)
	for i, n := range counts {
		// A fair share is 50; a socket the program skipped gets 0.
		if n < 20 {
			t.Errorf("member %d accepted %d of 200 connections (%v), want about 50", i, n, counts)
		}
	}
}

// A successor that shrinks the group to one socket receives every new
// connection on it, while the predecessor still holds all four.
func TestShrinkSteersAwayFromRetired(t *testing.T) {
	pin := filepath.Join(testenv.BPFFS(t), "weir")
	old := steered(t, pin, 4, nil)
	next := steered(t, pin, 1, handOver(t, old))
	dialN(t, net.TCPAddrFromAddrPort(next.Addr()), 100)
	// The old process's member 0 is the same socket as the new one's.
	counts := acceptCounts(t, old.Listeners(), 100)
	if counts[0] != 100 {
		t.Errorf("connections per old member %v; want all 100 on the one the successor kept", counts)
	}
}

// Connections queued on a socket the successor retired move to its
// member when the predecessor closes its last descriptor: none is reset.
func TestRetiredQueueMigrates(t *testing.T) {
	pin := filepath.Join(testenv.BPFFS(t), "weir")
	old := steered(t, pin, 2, nil)
	conns := dialN(t, net.TCPAddrFromAddrPort(old.Addr()), 60) // queued on both, accepted by no one
	next := steered(t, pin, 1, handOver(t, old))
	if !next.Migrates() {
		testenv.SkipOrFail(t, "the kernel has no BPF_SK_REUSEPORT_SELECT_OR_MIGRATE (Linux 5.14+)")
	}
	old.Close() // the retired socket's last descriptor
	acceptCounts(t, next.Listeners(), len(conns))
}

// A successor that grows the group spreads connections over old and new
// members alike.
func TestGrowSpreadsOverNewMembers(t *testing.T) {
	pin := filepath.Join(testenv.BPFFS(t), "weir")
	old := steered(t, pin, 1, nil)
	next := steered(t, pin, 3, handOver(t, old))
	old.Close()
	dialN(t, net.TCPAddrFromAddrPort(next.Addr()), 150)
	counts := acceptCounts(t, next.Listeners(), 150)
	for i, n := range counts {
		if n < 15 {
			t.Errorf("member %d accepted %d of 150 (%v), want about 50", i, n, counts)
		}
	}
}

func TestWithoutSteeringOneExclusiveSocket(t *testing.T) {
	g, err := Open("tcp", "127.0.0.1:0", nil, Config{Sockets: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// The reason is the missing pin path, not what follows from it.
	if err := g.Steering(); !errors.Is(err, ErrNoSteering) || !strings.Contains(err.Error(), "no pin path") {
		t.Errorf("Steering() = %v, want ErrNoSteering for want of a pin path", err)
	}
	if err := g.Activate(); err != nil {
		t.Fatal(err)
	}
	if n := len(g.Listeners()); n != 1 {
		t.Errorf("%d sockets without steering, want 1", n)
	}
	ln, err := net.Listen("tcp", g.Addr().String())
	if err == nil {
		ln.Close()
		t.Fatalf("a second socket could bind %s: the group's socket is not exclusive", g.Addr())
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second bind: %v, want EADDRINUSE", err)
	}
	dialN(t, net.TCPAddrFromAddrPort(g.Addr()), 5)
	acceptCounts(t, g.Listeners(), 5)
}

// The group's pins stay while a successor holds its sockets and go with
// the last of them; bpftool shows the active count by name.
func TestPinsLiveWithTheSockets(t *testing.T) {
	pin := filepath.Join(testenv.BPFFS(t), "weir")
	old := steered(t, pin, 3, nil)
	dir := filepath.Join(pin, PinDir, GroupName(old.Addr()))
	if bpftool, err := exec.LookPath("bpftool"); err == nil {
		out, err := exec.Command(bpftool, "map", "dump", "pinned", filepath.Join(dir, "weir_rp1_ctl")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"count": 3`) {
			t.Errorf("bpftool map dump of weir_rp1_ctl: %v\n%s\nwant \"count\": 3", err, out)
		}
	} else {
		testenv.SkipOrFail(t, "bpftool is not installed")
	}
	next := steered(t, pin, 3, handOver(t, old))
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the predecessor's Close removed the pins its successor uses: %v", err)
	}
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins of a group with no socket left: stat %s: %v, want gone", dir, err)
	}
}

func TestOpenRejectsBadSizes(t *testing.T) {
	for _, k := range []int{0, -1, MaxSockets + 1} {
		if _, err := Open("tcp", "127.0.0.1:0", nil, Config{Sockets: k}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open with %d sockets: %v, want ErrInvalidConfig", k, err)
		}
	}
}

// Sweep removes the pins of groups whose sockets are all gone (a killed
// weir's) and keeps those with a live socket.
func TestSweepRemovesOnlyDeadGroups(t *testing.T) {
	pin := filepath.Join(testenv.BPFFS(t), "weir")
	live := steered(t, pin, 2, nil)
	dead := steered(t, pin, 2, nil)
	deadDir := filepath.Join(pin, PinDir, GroupName(dead.Addr()))
	// A killed process closes its sockets but never its steering: keep
	// the pins as such a process leaves them.
	for _, ln := range dead.Listeners() {
		ln.Close()
	}
	if _, err := os.Stat(deadDir); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(pin); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deadDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead group's pins: stat %v, want removed", err)
	}
	if _, err := os.Stat(filepath.Join(pin, PinDir, GroupName(live.Addr()))); err != nil {
		t.Errorf("the live group's pins were swept: %v", err)
	}
}

// A fresh group never joins a listener already on its address: a second
// weir fails to bind as it should, whether it shares the pin path or not.
func TestFreshGroupRefusesAnAddressInUse(t *testing.T) {
	bpffs := testenv.BPFFS(t)
	g := steered(t, filepath.Join(bpffs, "one"), 2, nil)
	for _, pin := range []string{"one", "two"} {
		_, err := Open("tcp", g.Addr().String(), nil, Config{Sockets: 2, PinPath: filepath.Join(bpffs, pin)})
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("a fresh group on %s with pin path %s: %v, want EADDRINUSE", g.Addr(), pin, err)
		}
	}
}

// Every socket of the group, bound or inherited, hands its accepted
// connections the configured options: TCP keep-alive (Go's default probes,
// or none), and with ClientSpeaksFirst delayed-ACK mode (TCP_QUICKACK
// reads 0) rather than the kernel's quick-ACK mode.
func TestAcceptedConnectionOptions(t *testing.T) {
	tests := []struct {
		name        string
		keepAlive   time.Duration
		clientFirst bool
		steer       bool
		inherit     bool // the group is opened again from a group without the options
		// SO_KEEPALIVE and TCP_QUICKACK of an accepted connection
		wantKeepAlive, wantQuickAck int
	}{
		{"default, one socket", 0, false, false, false, 1, 1},
		{"keep-alive off, one socket", -1, false, false, false, 0, 1},
		{"client first, one socket", -1, true, false, false, 0, 0},
		{"default, steered group", 0, false, true, false, 1, 1},
		{"keep-alive off, steered group", -1, false, true, false, 0, 1},
		{"client first, steered group", -1, true, true, false, 0, 0},
		// net.FileListener takes no ListenConfig: Go's default probes.
		{"client first, inherited", -1, true, true, true, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Sockets: 3, KeepAlive: tc.keepAlive, ClientSpeaksFirst: tc.clientFirst && !tc.inherit}
			if tc.steer {
				cfg.PinPath = filepath.Join(testenv.BPFFS(t), "weir")
			}
			g, err := Open("tcp", "127.0.0.1:0", nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if tc.inherit {
				cfg.ClientSpeaksFirst = true
				if g, err = Open("tcp", g.Addr().String(), handOver(t, g), cfg); err != nil {
					t.Fatal(err)
				}
				defer g.Close()
			}
			if err := g.Activate(); err != nil {
				t.Fatal(err)
			}
			for i, c := range oneFromEach(t, g) {
				conn := c.(*net.TCPConn)
				if got := testenv.Sockopt(t, conn, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != tc.wantKeepAlive {
					t.Errorf("member %d: accepted connection has SO_KEEPALIVE %d, want %d", i, got, tc.wantKeepAlive)
				}
				if got := testenv.Sockopt(t, conn, unix.IPPROTO_TCP, unix.TCP_QUICKACK); got != tc.wantQuickAck {
					t.Errorf("member %d: accepted connection has TCP_QUICKACK %d, want %d", i, got, tc.wantQuickAck)
				}
			}
		})
	}
}

// oneFromEach dials g until each of its members has accepted a connection
// and returns one accepted connection per member, in member order. The
// connections are closed when the test ends.
func oneFromEach(t *testing.T, g *Group) []net.Conn {
	t.Helper()
	lns := g.Listeners()
	type accepted struct {
		member int
		c      net.Conn
	}
	got := make(chan accepted)
	stop := make(chan struct{})
	defer close(stop)
	for i, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				select {
				case got <- accepted{i, c}:
				case <-stop:
					c.Close()
					return
				}
			}
		}()
	}
	out := make([]net.Conn, len(lns))
	missing := len(lns)
	deadline := time.After(5 * time.Second)
	for n := 0; missing > 0; n++ {
		if n == 500 {
			t.Fatalf("%d of %d members accepted none of 500 connections", missing, len(lns))
		}
		d, err := net.DialTimeout("tcp", g.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		select {
		case a := <-got:
			t.Cleanup(func() { a.c.Close() })
			if out[a.member] == nil {
				out[a.member] = a.c
				missing--
			}
		case <-deadline:
			t.Fatal("no connection accepted within 5s")
		}
	}
	return out
}
