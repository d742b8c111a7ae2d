//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestDSRTooBigEndToEnd uploads 1 MiB through DSR services, IPv4 and
// IPv6, where the link to the backend has the client's MTU (1500): the
// client's full-size segments do not fit once encapsulated. The upload
// completes only if the balancer's ICMP answer tells the client the MTU
// it must use, which the client's route cache then shows.
//
// The client sends no GSO aggregates (the balancer would shrink their
// segments by the outer header, bpf_skb_adjust_room lowering gso_size, so
// they would always fit): its packets reach the balancer as they travel.
// They come with full checksums, or CHECKSUM_PARTIAL (checksum offload on
// the client's veth) with the answer's checksum then finished by the
// balancer's kernel (its link does not offload) or left to the client
// (it does), the three ways the answer can leave.
//
// XDP runs with full checksums only, as in TestEndToEnd.
func TestDSRTooBigEndToEnd(t *testing.T) {
	needBPF(t)
	forEachHook(t, func(t *testing.T, hook Hook) {
		for _, variant := range []struct {
			name                     string
			clientOffload, lbOffload bool
		}{
			{"full checksums", false, false},
			{"partial, finished by the balancer", true, false},
			{"partial, left to the client", true, true},
		} {
			if hook != HookTC && variant.clientOffload {
				continue
			}
			t.Run(variant.name, func(t *testing.T) {
				testDSRTooBigEndToEnd(t, hook, ForwardingDSRIPIP, variant.clientOffload, variant.lbOffload)
			})
		}
	})
}

// testDSRTooBigEndToEnd runs the uploads through services forwarding fwd
// (IPIP or GUE), whose outer headers the client's path MTU loses.
func testDSRTooBigEndToEnd(t *testing.T, hook Hook, fwd Forwarding, clientOffload, lbOffload bool) {
	topo := newDSRTopology(t, !clientOffload)
	readyForXDP(t, hook, topo.client, topo.backend)
	if err := inNetns(topo.client, func() error { return noSegmentation("cl-0") }); err != nil {
		t.Fatal(err)
	}
	if err := inNetns(topo.lb, func() error { return offload("lb-c", lbOffload, true) }); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	d := openAt(t, opts)
	attachIn(t, d, hook, topo.lb, "lb-c", "lb-b")
	udp := 0 // the outer UDP header's length
	if fwd == ForwardingDSRGUE {
		udp = 8
	}
	services := []struct {
		svc       Service
		backend   netip.Addr
		clientMTU int
	}{
		{Service{ID: 0, VIP: netip.MustParseAddrPort("192.0.2.10:81"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"),
			Forwarding: fwd}, netip.MustParseAddr("203.0.113.11"), 1500 - 20 - udp},
		{Service{ID: 1, VIP: netip.MustParseAddrPort("[2001:db8::10]:81"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("2001:db8:1::1"),
			Forwarding: fwd}, netip.MustParseAddr("2001:db8:1::11"), 1500 - 40 - udp},
	}
	how := setUpBackendFor(t, topo.backend, "be-0", fwd, DefaultGUEPort, "192.0.2.10:81", "[2001:db8::10]:81")
	t.Logf("the backend decapsulates with %s", how)
	for _, s := range services {
		if _, err := d.SetService(s.svc, []netip.AddrPort{netip.AddrPortFrom(s.backend, 81)}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		startCountServer(t, topo.backend, s.svc.VIP)
	}
	for _, s := range services {
		t.Run(s.svc.VIP.String(), func(t *testing.T) {
			got, err := upload(topo.client, s.svc.VIP, make([]byte, bulkSize))
			if err != nil || got != bulkSize {
				t.Fatalf("upload through %s: the backend counted %d, %v; want %d\n%s", s.svc.VIP, got, err, bulkSize,
					dsrDiagnostics(t, d, topo, s.svc.ID))
			}
			st := serviceState(t, d, s.svc.ID)
			if st.Stats.Drops[DropDSRTooBig] == 0 {
				t.Errorf("no packet counted as %s: the test did not test the MTU answer", DropDSRTooBig)
			}
			if mtu, err := pathMTU(topo.client, s.svc.VIP.Addr()); err != nil || mtu != s.clientMTU {
				t.Errorf("client's path MTU towards %s: %d (%v), want %d", s.svc.VIP.Addr(), mtu, err, s.clientMTU)
			}
		})
	}
}

// newDSRPMTUTopology is pmtuTopology for direct server return: the
// backend answers the client through the router, whose link to the client
// carries 1280 bytes, and the router's "fragmentation needed" / "packet
// too big", sent to the VIP, reaches the balancer (the router's default
// route), which must send it on to the backend.
//
//	client  cl-0 198.51.100.2/25, 2001:db8:c::2/64       default via the router
//	router  rt-c 198.51.100.1/25, 2001:db8:c::1/64 (MTU 1280)
//	        rt-l 198.51.100.129/25, 2001:db8:d::1/64     default via the balancer
//	        rt-b 192.0.2.129/25, 2001:db8:e::1/64        the backend's way to clients
//	lb      lb-r 198.51.100.130/25, 2001:db8:d::2/64     clients via the router
//	        lb-b 203.0.113.1/24, 2001:db8:1::1/64
//	backend be-0 203.0.113.11/24, 2001:db8:1::11/64
//	        be-r 192.0.2.130/25, 2001:db8:e::2/64        clients via the router
//	        lo: the VIPs, set up by scripts/dsr-backend
func newDSRPMTUTopology(t *testing.T) pmtuTopology {
	t.Helper()
	topo := newPMTUTopology(t)
	gw := netip.MustParseAddr
	steps := []nsStep{
		{topo.router, func() error {
			return errors.Join(addVeth("rt-b", "be-r"), moveLink("be-r", topo.backend),
				testenv.ConfigureLink("rt-b", "192.0.2.129/25", "2001:db8:e::1/64"),
				// Backend packets come from the VIPs, which the router
				// routes towards the balancer.
				writeSysctl("ipv4/conf/all/rp_filter", "0"), writeSysctl("ipv4/conf/rt-b/rp_filter", "0"))
		}},
		{topo.backend, func() error {
			return errors.Join(testenv.ConfigureLink("be-r", "192.0.2.130/25", "2001:db8:e::2/64"),
				offload("be-r", true, false),
				addRoute("198.51.100.0/25", gw("192.0.2.129")),
				addRoute("2001:db8:c::/64", gw("2001:db8:e::1")))
		}},
	}
	setUp(t, "DSR PMTU topology", steps)
	return topo
}

// TestDSRPathMTUThroughVIP downloads 1 MiB from DSR services, IPv4 and
// IPv6, whose backend answers across a router with a 1280-byte link to the
// client. The download only completes if the router's ICMP error about a
// VIP → client packet, which arrives at the balancer, reaches the backend
// (encapsulated, unchanged): the backend's route cache then shows the
// lowered path MTU towards the client.
func TestDSRPathMTUThroughVIP(t *testing.T) {
	needBPF(t)
	forEachHook(t, testDSRPathMTUThroughVIP)
}

func testDSRPathMTUThroughVIP(t *testing.T, hook Hook) {
	topo := newDSRPMTUTopology(t)
	readyForXDP(t, hook, topo.client, topo.router, topo.backend)
	d := openTest(t)
	attachIn(t, d, hook, topo.lb, "lb-r", "lb-b")
	services := []struct {
		svc     Service
		backend netip.Addr
		client  netip.Addr
	}{
		{Service{ID: 0, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"),
			Forwarding: ForwardingDSRIPIP}, netip.MustParseAddr("203.0.113.11"), netip.MustParseAddr("198.51.100.2")},
		{Service{ID: 1, VIP: netip.MustParseAddrPort("[2001:db8::10]:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("2001:db8:1::1"),
			Forwarding: ForwardingDSRIPIP}, netip.MustParseAddr("2001:db8:1::11"), netip.MustParseAddr("2001:db8:c::2")},
	}
	how := setUpDSRBackend(t, topo.backend, "be-0", "192.0.2.10:80", "[2001:db8::10]:80")
	t.Logf("the backend decapsulates with %s", how)
	// The path to the backend takes the outer header: only the client's path is narrow.
	for _, l := range []struct {
		ns   netns.NsHandle
		link string
	}{{topo.lb, "lb-b"}, {topo.backend, "be-0"}} {
		if err := inNetns(l.ns, func() error { return setMTU(l.link, 1540) }); err != nil {
			t.Fatal(err)
		}
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), downloadSize/16)
	for _, s := range services {
		if _, err := d.SetService(s.svc, []netip.AddrPort{netip.AddrPortFrom(s.backend, 80)}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		startBulkServer(t, topo.backend, s.svc.VIP, payload)
	}
	for _, s := range services {
		t.Run(s.svc.VIP.String(), func(t *testing.T) {
			got, err := download(topo.client, s.svc.VIP)
			if err != nil {
				t.Fatalf("download through %s: %v after %d of %d bytes\n%s", s.svc.VIP, err, len(got), downloadSize,
					dsrDiagnostics(t, d, dsrTopology{e2eTopology{client: topo.client, lb: topo.lb, backend: topo.backend}}, s.svc.ID))
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("download through %s: %d bytes differ from what the backend sent", s.svc.VIP, len(got))
			}
			// The backend learnt the path's MTU from the error the balancer sent on.
			if mtu, err := pathMTU(topo.backend, s.client); err != nil || mtu != pmtuLinkMTU {
				t.Errorf("backend's path MTU towards %s: %d (%v), want %d", s.client, mtu, err, pmtuLinkMTU)
			}
		})
	}
}

// noSegmentation switches TSO and GSO off on link: the kernel sends
// packets of at most the MTU, whatever their checksum offload.
func noSegmentation(link string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, cmd := range []uint32{unix.ETHTOOL_STSO, unix.ETHTOOL_SGSO} {
		if err := ethtoolSet(fd, link, cmd, false); err != nil {
			return fmt.Errorf("ethtool %#x on %s: %w", cmd, link, err)
		}
	}
	return nil
}
