//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/internal/testenv"
)

// pmtuTopology is the classic path MTU black hole: a router between the
// client and the balancer whose link to the client carries 1280 bytes,
// while the client's own end of that link, and every other link, carries
// 1500. The client therefore advertises an MSS of 1460, the backend sends
// full 1500-byte segments, and only the router's "fragmentation needed" /
// "packet too big", sent to the VIP, can tell the backend to send less.
// Documentation prefixes only; nothing leaves the namespaces.
//
//	client  cl-0 198.51.100.2/25, 2001:db8:c::2/64       default via the router
//	router  rt-c 198.51.100.1/25, 2001:db8:c::1/64 (MTU 1280)
//	        rt-l 198.51.100.129/25, 2001:db8:d::1/64     default via the balancer
//	lb      lb-r 198.51.100.130/25, 2001:db8:d::2/64     clients via the router
//	        lb-b 203.0.113.1/24, 2001:db8:1::1/64
//	backend be-0 203.0.113.11/24, 2001:db8:1::11/64
type pmtuTopology struct {
	client, router, lb, backend netns.NsHandle
}

// pmtuLinkMTU is the MTU of the router's link towards the client.
const pmtuLinkMTU = 1280

func newPMTUTopology(t *testing.T) pmtuTopology {
	t.Helper()
	topo := pmtuTopology{client: newNetns(t), router: newNetns(t), lb: newNetns(t), backend: newNetns(t)}
	gw := netip.MustParseAddr
	steps := []nsStep{
		{topo.router, func() error {
			return errors.Join(addVeth("rt-c", "cl-0"), moveLink("cl-0", topo.client),
				addVeth("rt-l", "lb-r"), moveLink("lb-r", topo.lb),
				setMTU("rt-c", pmtuLinkMTU),
				testenv.ConfigureLink("rt-c", "198.51.100.1/25", "2001:db8:c::1/64"),
				testenv.ConfigureLink("rt-l", "198.51.100.129/25", "2001:db8:d::1/64"),
				enableForwarding(),
				addDefaultRoutes(gw("198.51.100.130"), gw("2001:db8:d::2")))
		}},
		{topo.lb, func() error {
			return errors.Join(addVeth("lb-b", "be-0"), moveLink("be-0", topo.backend),
				testenv.ConfigureLink("lb-r", "198.51.100.130/25", "2001:db8:d::2/64"),
				testenv.ConfigureLink("lb-b", "203.0.113.1/24", "2001:db8:1::1/64"),
				addRoute("198.51.100.0/25", gw("198.51.100.129")),
				addRoute("2001:db8:c::/64", gw("2001:db8:d::1")),
				enableForwarding(),
				// Receivers verify every checksum: nothing arrives marked
				// as already checked.
				offload("lb-r", false, false), offload("lb-b", false, false))
		}},
		{topo.client, func() error {
			return errors.Join(testenv.ConfigureLink("cl-0", "198.51.100.2/25", "2001:db8:c::2/64"),
				offload("cl-0", true, false),
				addDefaultRoutes(gw("198.51.100.1"), gw("2001:db8:c::1")))
		}},
		{topo.backend, func() error {
			return errors.Join(testenv.ConfigureLink("be-0", "203.0.113.11/24", "2001:db8:1::11/64"),
				offload("be-0", true, false))
		}},
	}
	setUp(t, "topology", steps)
	return topo
}

// addRoute routes prefix through gw in the calling thread's namespace.
func addRoute(prefix string, gw netip.Addr) error {
	_, dst, err := net.ParseCIDR(prefix)
	if err != nil {
		return err
	}
	if err := netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.IP(gw.AsSlice())}); err != nil {
		return fmt.Errorf("route %s via %s: %w", prefix, gw, err)
	}
	return nil
}

// pathMTU is the MTU the kernel of ns uses towards dst: its route's, or
// the one it learnt from an ICMP error (the route cache's exception).
func pathMTU(ns netns.NsHandle, dst netip.Addr) (int, error) {
	var mtu int
	err := inNetns(ns, func() error {
		routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
		if err != nil {
			return fmt.Errorf("route to %s: %w", dst, err)
		}
		if len(routes) == 0 {
			return fmt.Errorf("no route to %s", dst)
		}
		mtu = routes[0].MTU
		return nil
	})
	return mtu, err
}

// downloadSize is what the backend sends on every connection.
const downloadSize = 1 << 20

// downloadTimeout bounds one download: on these veths 1 MiB takes
// milliseconds, while a black hole never finishes (TCP retransmits the
// same too-large segment with backoff).
const downloadTimeout = 10 * time.Second

// TestPathMTUThroughVIP downloads 1 MiB through the VIP, over IPv4 and
// IPv6, across a router whose link to the client is narrower than every
// other link. The download only completes if the router's ICMP error about
// a VIP → client packet reaches the backend translated, as an error about
// its own backend → SNAT packet: the backend then lowers its path MTU.
func TestPathMTUThroughVIP(t *testing.T) {
	needBPF(t)
	forEachHook(t, testPathMTUThroughVIP)
}

func testPathMTUThroughVIP(t *testing.T, hook Hook) {
	topo := newPMTUTopology(t)
	readyForXDP(t, hook, topo.client, topo.router, topo.backend)
	d := openTest(t)
	attachIn(t, d, hook, topo.lb, "lb-r", "lb-b")
	services := []struct {
		svc     Service
		backend netip.AddrPort
	}{
		{Service{ID: 0, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")},
			netip.MustParseAddrPort("203.0.113.11:8080")},
		{Service{ID: 1, VIP: netip.MustParseAddrPort("[2001:db8::10]:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("2001:db8:1::1")},
			netip.MustParseAddrPort("[2001:db8:1::11]:8080")},
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), downloadSize/16)
	for _, s := range services {
		if _, err := d.SetService(s.svc, []netip.AddrPort{s.backend}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		startBulkServer(t, topo.backend, s.backend, payload)
	}
	for _, s := range services {
		t.Run(s.svc.VIP.String(), func(t *testing.T) {
			got, err := download(topo.client, s.svc.VIP)
			if err != nil {
				t.Fatalf("download through %s: %v after %d of %d bytes", s.svc.VIP, err, len(got), downloadSize)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("download through %s: %d bytes differ from what the backend sent", s.svc.VIP, len(got))
			}
			// The backend learnt the path's MTU, from the error as the
			// program translated it: about its own packet to the SNAT
			// address.
			if mtu, err := pathMTU(topo.backend, s.svc.SNAT); err != nil || mtu != pmtuLinkMTU {
				t.Errorf("backend's path MTU towards %s: %d (%v), want %d", s.svc.SNAT, mtu, err, pmtuLinkMTU)
			}
		})
	}
}

// startBulkServer sends payload on every connection accepted on addr in ns.
func startBulkServer(t *testing.T, ns netns.NsHandle, addr netip.AddrPort, payload []byte) {
	t.Helper()
	var ln *net.TCPListener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by the test
			}
			conn.SetDeadline(time.Now().Add(downloadTimeout))
			conn.Write(payload)
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// download reads everything the service at vip sends, from a connection
// opened in ns, within downloadTimeout.
func download(ns netns.NsHandle, vip netip.AddrPort) ([]byte, error) {
	var conn net.Conn
	err := inNetns(ns, func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: ioTimeout}).Dial("tcp", vip.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(downloadTimeout)); err != nil {
		return nil, err
	}
	return io.ReadAll(conn)
}

// newNarrowBackendPath is the same black hole on the other side: a router
// between the balancer and the backend whose link to the backend carries
// 1280 bytes (the backend's end 1500), so that only its "fragmentation
// needed" / "packet too big", sent to the SNAT address, can tell the
// client to send less.
//
//	client  cl-0 198.51.100.2/24, 2001:db8:c::2/64       default via the balancer
//	lb      lb-c 198.51.100.1/24, 2001:db8:c::1/64
//	        lb-r 203.0.113.1/25, 2001:db8:1::1/64        backends via the router
//	router  rt-l 203.0.113.2/25, 2001:db8:1::2/64        default via the balancer
//	        rt-b 203.0.113.129/25, 2001:db8:2::1/64 (MTU 1280)
//	backend be-0 203.0.113.130/25, 2001:db8:2::2/64      default via the router
func newNarrowBackendPath(t *testing.T) pmtuTopology {
	t.Helper()
	topo := pmtuTopology{client: newNetns(t), router: newNetns(t), lb: newNetns(t), backend: newNetns(t)}
	gw := netip.MustParseAddr
	steps := []nsStep{
		{topo.router, func() error {
			return errors.Join(addVeth("rt-b", "be-0"), moveLink("be-0", topo.backend),
				addVeth("rt-l", "lb-r"), moveLink("lb-r", topo.lb),
				setMTU("rt-b", pmtuLinkMTU),
				testenv.ConfigureLink("rt-b", "203.0.113.129/25", "2001:db8:2::1/64"),
				testenv.ConfigureLink("rt-l", "203.0.113.2/25", "2001:db8:1::2/64"),
				enableForwarding(),
				addDefaultRoutes(gw("203.0.113.1"), gw("2001:db8:1::1")))
		}},
		{topo.lb, func() error {
			return errors.Join(addVeth("lb-c", "cl-0"), moveLink("cl-0", topo.client),
				testenv.ConfigureLink("lb-c", "198.51.100.1/24", "2001:db8:c::1/64"),
				testenv.ConfigureLink("lb-r", "203.0.113.1/25", "2001:db8:1::1/64"),
				addRoute("203.0.113.128/25", gw("203.0.113.2")),
				addRoute("2001:db8:2::/64", gw("2001:db8:1::2")),
				enableForwarding(),
				offload("lb-c", false, false), offload("lb-r", false, false))
		}},
		{topo.client, func() error {
			return errors.Join(testenv.ConfigureLink("cl-0", "198.51.100.2/24", "2001:db8:c::2/64"),
				offload("cl-0", true, false),
				addDefaultRoutes(gw("198.51.100.1"), gw("2001:db8:c::1")))
		}},
		{topo.backend, func() error {
			return errors.Join(testenv.ConfigureLink("be-0", "203.0.113.130/25", "2001:db8:2::2/64"),
				offload("be-0", true, false),
				addDefaultRoutes(gw("203.0.113.129"), gw("2001:db8:2::1")))
		}},
	}
	setUp(t, "topology", steps)
	return topo
}

// TestPathMTUTowardsBackend uploads 1 MiB through the VIP, over IPv4 and
// IPv6, across a router whose link to the backend is narrower than every
// other link. The upload only completes if the router's ICMP error about
// a SNAT → backend packet reaches the client translated, from the VIP and
// about its own client → VIP packet: the client then lowers its path MTU.
func TestPathMTUTowardsBackend(t *testing.T) {
	needBPF(t)
	forEachHook(t, testPathMTUTowardsBackend)
}

func testPathMTUTowardsBackend(t *testing.T, hook Hook) {
	topo := newNarrowBackendPath(t)
	readyForXDP(t, hook, topo.client, topo.router, topo.backend)
	d := openTest(t)
	attachIn(t, d, hook, topo.lb, "lb-c", "lb-r")
	services := []struct {
		svc     Service
		backend netip.AddrPort
	}{
		{Service{ID: 0, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")},
			netip.MustParseAddrPort("203.0.113.130:8080")},
		{Service{ID: 1, VIP: netip.MustParseAddrPort("[2001:db8::10]:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("2001:db8:1::1")},
			netip.MustParseAddrPort("[2001:db8:2::2]:8080")},
	}
	payload := bytes.Repeat([]byte("fedcba9876543210"), downloadSize/16)
	for _, s := range services {
		if _, err := d.SetService(s.svc, []netip.AddrPort{s.backend}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		startSinkServer(t, topo.backend, s.backend)
	}
	for _, s := range services {
		t.Run(s.svc.VIP.String(), func(t *testing.T) {
			n, err := upload(topo.client, s.svc.VIP, payload)
			if err != nil {
				t.Fatalf("upload through %s: %v", s.svc.VIP, err)
			}
			if n != len(payload) {
				t.Fatalf("upload through %s: the backend got %d of %d bytes", s.svc.VIP, n, len(payload))
			}
			// The client learnt the path's MTU, from the error as the
			// program translated it: from the VIP, about its own packet.
			if mtu, err := pathMTU(topo.client, s.svc.VIP.Addr()); err != nil || mtu != pmtuLinkMTU {
				t.Errorf("client's path MTU towards %s: %d (%v), want %d", s.svc.VIP.Addr(), mtu, err, pmtuLinkMTU)
			}
		})
	}
}

// startSinkServer reads each connection accepted on addr in ns to its end
// and answers with the number of bytes it read.
func startSinkServer(t *testing.T, ns netns.NsHandle, addr netip.AddrPort) {
	t.Helper()
	var ln *net.TCPListener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by the test
			}
			conn.SetDeadline(time.Now().Add(downloadTimeout))
			n, _ := io.Copy(io.Discard, conn)
			fmt.Fprint(conn, n)
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// upload sends payload to the service at vip from a connection opened in
// ns and returns how many bytes the backend says it read, within
// downloadTimeout.
func upload(ns netns.NsHandle, vip netip.AddrPort, payload []byte) (int, error) {
	var conn *net.TCPConn
	err := inNetns(ns, func() error {
		c, err := (&net.Dialer{Timeout: ioTimeout}).Dial("tcp", vip.String())
		if err != nil {
			return err
		}
		conn = c.(*net.TCPConn)
		return nil
	})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(downloadTimeout)); err != nil {
		return 0, err
	}
	if _, err := conn.Write(payload); err != nil {
		return 0, err
	}
	if err := conn.CloseWrite(); err != nil {
		return 0, err
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		return 0, err
	}
	var n int
	if _, err := fmt.Sscan(string(answer), &n); err != nil {
		return 0, fmt.Errorf("answer %q: %w", answer, err)
	}
	return n, nil
}
