//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// ioTimeout bounds every network wait of the end-to-end test.
const ioTimeout = 5 * time.Second

// e2eTopology is three namespaces: a client, the balancer and a backend,
// joined by veth pairs. Only documentation prefixes are used and nothing
// leaves the namespaces.
//
//	client cl-0 198.51.100.2, 2001:db8:c::2   (default route via the balancer)
//	lb     lb-c 198.51.100.1, 2001:db8:c::1   lb-b 203.0.113.1, 2001:db8:1::1
//	backend be-0 203.0.113.11, 2001:db8:1::11
type e2eTopology struct {
	client, lb, backend netns.NsHandle
}

func newE2ETopology(t *testing.T, fullChecksums bool) e2eTopology {
	t.Helper()
	topo := e2eTopology{client: newNetns(t), lb: newNetns(t), backend: newNetns(t)}
	steps := []nsStep{
		{topo.lb, func() error {
			if err := addVeth("lb-c", "cl-0"); err != nil {
				return err
			}
			if err := addVeth("lb-b", "be-0"); err != nil {
				return err
			}
			if err := moveLink("cl-0", topo.client); err != nil {
				return err
			}
			if err := moveLink("be-0", topo.backend); err != nil {
				return err
			}
			if err := testenv.ConfigureLink("lb-c", "198.51.100.1/24", "2001:db8:c::1/64"); err != nil {
				return err
			}
			if err := testenv.ConfigureLink("lb-b", "203.0.113.1/24", "2001:db8:1::1/64"); err != nil {
				return err
			}
			return errors.Join(enableForwarding(), offload("lb-c", false, true), offload("lb-b", false, true))
		}},
		{topo.client, func() error {
			if err := testenv.ConfigureLink("cl-0", "198.51.100.2/24", "2001:db8:c::2/64"); err != nil {
				return err
			}
			return errors.Join(offload("cl-0", !fullChecksums, false),
				addDefaultRoutes(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:c::1")))
		}},
		{topo.backend, func() error {
			if err := testenv.ConfigureLink("be-0", "203.0.113.11/24", "2001:db8:1::11/64"); err != nil {
				return err
			}
			return offload("be-0", !fullChecksums, false)
		}},
	}
	setUp(t, "topology", steps)
	return topo
}

// offload sets checksum offload. The balancer's links never offload TX, so
// that a packet arriving CHECKSUM_PARTIAL gets its checksum finished in
// software on the way out; client and backend never trust RX, so that they
// verify every checksum the balancer produced.
func offload(link string, tx, rx bool) error { return setChecksumOffload(link, tx, rx) }

// TestEndToEnd sends real TCP and UDP traffic from a client through the
// attached program to a backend and back, for both families, once with
// CHECKSUM_PARTIAL packets from the senders and once with full checksums.
//
// XDP runs with full checksums only: a CHECKSUM_PARTIAL packet's offload
// state does not survive an XDP redirect (bpf/hook.h), so a local sender
// through XDP must not offload, which a NIC's traffic never needs.
func TestEndToEnd(t *testing.T) {
	needBPF(t)
	forEachHookAndChecksum(t, testEndToEnd)
}

func testEndToEnd(t *testing.T, hook Hook, fullChecksums bool) {
	topo := newE2ETopology(t, fullChecksums)
	readyForXDP(t, hook, topo.client, topo.backend)
	d := openTest(t)
	attachIn(t, d, hook, topo.lb, "lb-c", "lb-b")
	runs := hookRuns(t, d)
	backend4 := netip.MustParseAddr("203.0.113.11")
	backend6 := netip.MustParseAddr("2001:db8:1::11")
	services := []struct {
		svc     Service
		backend netip.AddrPort
	}{
		{Service{ID: 0, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")},
			netip.AddrPortFrom(backend4, 8080)},
		{Service{ID: 1, VIP: netip.MustParseAddrPort("192.0.2.10:53"), Proto: ProtoUDP, SNAT: netip.MustParseAddr("203.0.113.1")},
			netip.AddrPortFrom(backend4, 5353)},
		{Service{ID: 2, VIP: netip.MustParseAddrPort("[2001:db8::10]:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("2001:db8:1::1")},
			netip.AddrPortFrom(backend6, 8080)},
		{Service{ID: 3, VIP: netip.MustParseAddrPort("[2001:db8::10]:53"), Proto: ProtoUDP, SNAT: netip.MustParseAddr("2001:db8:1::1")},
			netip.AddrPortFrom(backend6, 5353)},
	}
	for _, s := range services {
		if _, err := d.SetService(s.svc, []netip.AddrPort{s.backend}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		startEchoServer(t, topo.backend, s.svc.Proto, s.backend)
	}

	var packets uint64
	defer func() { checkXDPForwarded(t, hook, runs, packets) }()
	for _, s := range services {
		name := fmt.Sprintf("%s/%d", s.svc.VIP, s.svc.Proto)
		t.Run(name, func(t *testing.T) {
			reply, err := exchange(topo.client, s.svc.Proto, s.svc.VIP, "hello "+name)
			if err != nil {
				t.Fatalf("exchange with %s: %v", s.svc.VIP, err)
			}
			// The backend saw the balancer's SNAT address and an allocated port.
			seen, msg, _ := strings.Cut(reply, " ")
			peer, err := netip.ParseAddrPort(seen)
			if err != nil || msg != "hello "+name {
				t.Fatalf("reply %q: want \"<peer> hello %s\"", reply, name)
			}
			if peer.Addr() != s.svc.SNAT || !DefaultSNATPorts.Contains(peer.Port()) {
				t.Errorf("backend saw the client as %s, want %s with a port in %s", peer, s.svc.SNAT, DefaultSNATPorts)
			}
			st := settledState(t, d, s.svc.ID)
			packets += st.Stats.Packets
			if st.Stats.Packets < 2 || st.Stats.NewFlows != 1 || st.BackendStats[0].Packets != st.Stats.Packets {
				t.Errorf("counters %+v, backend %+v: want ≥2 packets on one new flow, all via the backend",
					st.Stats, st.BackendStats[0])
			}
		})
	}
}

// settledState reads service id's counters once its service and backend
// counts agree: the exchange returns while the connection's teardown (the
// FINs and their ACKs) is still crossing the balancer, and a read of the
// two counters can fall between them. It gives up after 2 s and returns
// the last read, for the caller to report.
func settledState(t *testing.T, d *Dataplane, id uint32) ServiceState {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := serviceState(t, d, id)
		if st.BackendStats[0].Packets == st.Stats.Packets || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startEchoServer answers every message on addr in ns with "<peer> <message>".
func startEchoServer(t *testing.T, ns netns.NsHandle, proto uint8, addr netip.AddrPort) {
	t.Helper()
	var wg sync.WaitGroup
	var closer io.Closer
	err := inNetns(ns, func() error {
		if proto == ProtoTCP {
			ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
			if err != nil {
				return err
			}
			closer = ln
			wg.Go(func() { serveTCP(ln) })
			return nil
		}
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return err
		}
		closer = conn
		wg.Go(func() { serveUDP(conn) })
		return nil
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() {
		closer.Close()
		wg.Wait()
	})
}

func serveTCP(ln *net.TCPListener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed by the test
		}
		buf := make([]byte, 512)
		conn.SetDeadline(time.Now().Add(ioTimeout))
		if n, err := conn.Read(buf); err == nil {
			fmt.Fprintf(conn, "%s %s", conn.RemoteAddr(), buf[:n])
		}
		conn.Close()
	}
}

func serveUDP(conn *net.UDPConn) {
	buf := make([]byte, 512)
	for {
		n, peer, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by the test
		}
		conn.WriteToUDPAddrPort([]byte(fmt.Sprintf("%s %s", peer, buf[:n])), peer)
	}
}

// exchange sends msg to vip from a socket in ns and returns the answer. The
// socket is connected, so the kernel only accepts an answer from vip itself:
// a reply that was not translated back cannot be mistaken for one.
func exchange(ns netns.NsHandle, proto uint8, vip netip.AddrPort, msg string) (string, error) {
	network := "tcp"
	if proto == ProtoUDP {
		network = "udp"
	}
	var conn net.Conn
	err := inNetns(ns, func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: ioTimeout}).Dial(network, vip.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// nsStep is one network namespace's part of a test topology: f runs in ns.
type nsStep struct {
	ns netns.NsHandle
	f  func() error
}

// setUp runs each step of a topology in its namespace, in order, and fails
// the test (setting up what) at the first that fails.
func setUp(t *testing.T, what string, steps []nsStep) {
	t.Helper()
	for _, s := range steps {
		if err := inNetns(s.ns, s.f); err != nil {
			t.Fatalf("set up %s: %v", what, err)
		}
	}
}

// attachIn attaches d's program at hook to each named interface of ns.
func attachIn(t *testing.T, d *Dataplane, hook Hook, ns netns.NsHandle, ifnames ...string) {
	t.Helper()
	for _, ifname := range ifnames {
		if err := inNetns(ns, func() error {
			_, err := d.AttachHook(ifname, hook)
			return err
		}); err != nil {
			t.Fatalf("AttachHook(%s, %s): %v", ifname, hook, err)
		}
	}
}

// testHooks are the hooks every end-to-end test runs the program at.
var testHooks = []Hook{HookTC, HookXDP}

// readyForXDP readies the namespaces around the balancer for hook, as
// README.md tells a lab to: with XDP, a frame the program redirects to a
// veth arrives at the veth's peer as an XDP frame, which the peer drops
// unless it runs NAPI, as it does with GRO on; and a local sender's
// CHECKSUM_PARTIAL packet loses its offload state in an XDP redirect
// (bpf/hook.h), so the senders must finish their checksums (TX offload
// off). Every veth of each namespace gets both; tc needs neither.
func readyForXDP(t *testing.T, hook Hook, namespaces ...netns.NsHandle) {
	t.Helper()
	if hook == HookTC {
		return
	}
	for _, ns := range namespaces {
		if err := inNetns(ns, readyVethsForXDP); err != nil {
			t.Fatalf("ready veths for XDP: %v", err)
		}
	}
}

// hookRuns counts how often d's tc and XDP builds run from now on, for the
// rest of the test (BPF run statistics on while it lasts).
func hookRuns(t *testing.T, d *Dataplane) func() (tc, xdp uint64) {
	t.Helper()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enable BPF run statistics: %v", err)
	}
	t.Cleanup(func() { stats.Close() })
	xdpProg, err := d.xdpProgram()
	if err != nil {
		t.Fatal(err)
	}
	count := func(p *ebpf.Program) uint64 {
		st, err := p.Stats()
		if err != nil {
			t.Fatalf("program statistics: %v", err)
		}
		return st.RunCount
	}
	tc0, xdp0 := count(d.objs.WeirIngress), count(xdpProg)
	return func() (tc, xdp uint64) {
		return count(d.objs.WeirIngress) - tc0, count(xdpProg) - xdp0
	}
}

// checkXDPForwarded fails t unless XDP, not the tc build behind it,
// forwarded most of the packets the services counted: tc runs only on
// what XDP left to the stack (the first packets towards a neighbour not
// yet resolved, and the namespace's own traffic).
func checkXDPForwarded(t *testing.T, hook Hook, runs func() (tc, xdp uint64), packets uint64) {
	t.Helper()
	if hook == HookTC {
		return
	}
	tc, xdp := runs()
	t.Logf("%d packets translated; the XDP build ran %d times, the tc build %d", packets, xdp, tc)
	if xdp < packets || 2*tc >= packets {
		t.Errorf("the XDP build ran %d times and the tc build %d for %d packets: want XDP on every packet and tc on under half",
			xdp, tc, packets)
	}
}

// forEachHookAndChecksum runs f as a subtest per hook and per way the
// client's packets carry their checksums: left to offload (partial) or
// full. XDP gets full checksums only: a partial checksum's state does not
// survive an XDP redirect (README.md, "tc or XDP").
func forEachHookAndChecksum(t *testing.T, f func(t *testing.T, hook Hook, fullChecksums bool)) {
	forEachHook(t, func(t *testing.T, hook Hook) {
		for _, variant := range []struct {
			name          string
			fullChecksums bool
		}{{"checksum offload", false}, {"full checksums", true}} {
			if hook != HookTC && !variant.fullChecksums {
				continue
			}
			t.Run(variant.name, func(t *testing.T) { f(t, hook, variant.fullChecksums) })
		}
	})
}

// forEachHook runs f as a subtest per hook of testHooks.
func forEachHook(t *testing.T, f func(t *testing.T, hook Hook)) {
	for _, hook := range testHooks {
		t.Run(hook.String(), func(t *testing.T) { f(t, hook) })
	}
}
