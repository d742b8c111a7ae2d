package lab

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The client reaches every backend through the balancer, over IPv4 and
// IPv6: routing and forwarding work, and only inside the lab.
// Both labs: the bridged one and the routed one XDP needs.
func TestClientReachesBackendsThroughTheBalancer(t *testing.T) {
	for _, attach := range attaches {
		t.Run(attach, func(t *testing.T) { testClientReachesBackends(t, attach) })
	}
}

// attaches are the labs: bridged (tc) and routed (xdp).
var attaches = []string{"tc", "xdp"}

func testClientReachesBackends(t *testing.T, attach string) {
	l := UpFor(t, attach)
	for i, role := range Backends {
		for _, addr := range []netip.Addr{BackendAddr4(i), BackendAddr6(i)} {
			ap := netip.AddrPortFrom(addr, 7).String()
			ln, err := l.Listen(role, "tcp", ap)
			if err != nil {
				t.Fatalf("listen in %s on %s: %v", role, ap, err)
			}
			go func() {
				c, err := ln.Accept()
				if err == nil {
					io.WriteString(c, role)
					c.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := l.Dial(ctx, Client, "tcp", ap)
			cancel()
			if err != nil {
				t.Fatalf("client → %s: %v", ap, err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			c.Close()
			ln.Close()
			if err != nil || string(got) != role {
				t.Fatalf("client → %s: read %q, %v; want %q", ap, got, err, role)
			}
			// The backend saw the client's own address: plain routing,
			// no translation, until weir runs.
		}
	}
}

// The VIPs are local addresses of the balancer, so that a userspace data
// plane can bind them, and the lab's names are the ones Up announced.
func TestVIPsAreLocalToTheBalancer(t *testing.T) {
	for _, attach := range attaches {
		t.Run(attach, func(t *testing.T) { testVIPsAreLocal(t, attach) })
	}
}

func testVIPsAreLocal(t *testing.T, attach string) {
	l := UpFor(t, attach)
	for _, vip := range []netip.Addr{VIP4, VIP6} {
		ln, err := l.Listen(Balancer, "tcp", netip.AddrPortFrom(vip, 80).String())
		if err != nil {
			t.Fatalf("bind %s in the balancer: %v", vip, err)
		}
		ln.Close()
	}
	out, err := l.Exec(Balancer, "ip", "-brief", "link")
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range append([]string{ClientInterface, "b1", "b2", "b3"}, l.BackendInterfaces()...) {
		if !strings.Contains(out, link) {
			t.Errorf("balancer lacks link %s:\n%s", link, out)
		}
	}
}

// hostAddrs lists the host's addresses.
func hostAddrs(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return strings.Join(out, " ")
}

// Two labs run side by side, the host's own addresses do not change, and
// down removes every namespace.
func TestLabsAreIndependentAndLeaveNothing(t *testing.T) {
	before := hostAddrs(t)
	var names []string
	t.Run("a", func(t *testing.T) {
		names = append(names, Up(t).Name())
		t.Run("b while a is up", func(t *testing.T) {
			names = append(names, Up(t).Name())
			if during := hostAddrs(t); during != before {
				t.Errorf("the host's addresses changed with two labs up:\nbefore %s\nduring %s", before, during)
			}
		})
	})
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("lab names %v, want two distinct", names)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Fatalf("namespaces of lab %s remain:\n%s", n, out)
		}
	}
}
