//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netns"
)

// TestGUEEndToEnd is TestDSREndToEnd in GUE: real TCP and UDP traffic,
// both families, from a client to services forwarding in GUE to a
// backend set up by scripts/dsr-backend --encap gue. The backend sees the
// client's own address, its answers reach the client directly, and a bulk
// upload (GSO aggregates, segmented as a UDP tunnel on the way out)
// arrives whole.
//
// XDP runs with full checksums only, as in TestEndToEnd.
func TestGUEEndToEnd(t *testing.T) {
	needBPF(t)
	forEachHookAndChecksum(t, testGUEEndToEnd)
}

func testGUEEndToEnd(t *testing.T, hook Hook, fullChecksums bool) {
	const port = 6081 // not the default: the set-up and the service must agree on it
	topo := newDSRTopology(t, fullChecksums)
	readyForXDP(t, hook, topo.client, topo.backend)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	opts.MaxServices = 8
	d := openAt(t, opts)
	attachIn(t, d, hook, topo.lb, "lb-c", "lb-b")
	how := setUpBackendFor(t, topo.backend, "be-0", ForwardingDSRGUE, port, "192.0.2.10:80", "[2001:db8::10]:80")
	t.Logf("the backend decapsulates with %s", how)
	// The path to the backend takes the outer headers (IP and UDP), so that
	// the upload's full-size segments are not too big.
	for _, l := range []struct {
		ns   netns.NsHandle
		link string
	}{{topo.lb, "lb-b"}, {topo.backend, "be-0"}} {
		if err := inNetns(l.ns, func() error { return setMTU(l.link, 1500+48) }); err != nil {
			t.Fatal(err)
		}
	}
	type service struct {
		svc    Service
		client netip.Addr
		bulk   bool
	}
	var services []service
	for i, vip := range []string{"192.0.2.10", "2001:db8::10"} {
		snat, backend, client := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.11"), dsrClient4
		if i == 1 {
			snat, backend, client = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::11"), dsrClient6
		}
		for _, s := range []struct {
			port  uint16
			proto uint8
			bulk  bool
		}{{80, ProtoTCP, false}, {53, ProtoUDP, false}, {81, ProtoTCP, true}} {
			svc := Service{ID: uint32(len(services)), VIP: netip.AddrPortFrom(netip.MustParseAddr(vip), s.port), Proto: s.proto,
				SNAT: snat, Forwarding: ForwardingDSRGUE, GUEPort: port}
			if _, err := d.SetService(svc, []netip.AddrPort{netip.AddrPortFrom(backend, s.port)}, constantTable(d.opts.TableSize, 0)); err != nil {
				t.Fatalf("SetService: %v", err)
			}
			if s.bulk {
				startCountServer(t, topo.backend, svc.VIP)
			} else {
				startEchoServer(t, topo.backend, svc.Proto, svc.VIP)
			}
			services = append(services, service{svc, client, s.bulk})
		}
	}
	for _, s := range services {
		name := fmt.Sprintf("%s/%d", s.svc.VIP, s.svc.Proto)
		t.Run(name, func(t *testing.T) {
			if s.bulk {
				got, err := upload(topo.client, s.svc.VIP, make([]byte, bulkSize))
				if err != nil || got != bulkSize {
					t.Fatalf("upload through %s: the backend counted %d, %v; want %d\n%s", s.svc.VIP, got, err, bulkSize,
						dsrDiagnostics(t, d, topo, s.svc.ID))
				}
			} else {
				checkClientSeen(t, d, topo, s.svc, s.client, name)
			}
			checkOneFlow(t, d, s.svc.ID)
		})
	}
}

// TestGUETooBigEndToEnd is TestDSRTooBigEndToEnd in GUE: a 1 MiB upload
// through GUE services, IPv4 and IPv6, whose link to the backend has the
// client's MTU (1500), completes because the balancer's ICMP answer tells
// the client the MTU GUE leaves it, which its route cache then shows:
// 1500 less the outer IP and UDP headers.
func TestGUETooBigEndToEnd(t *testing.T) {
	needBPF(t)
	forEachHook(t, func(t *testing.T, hook Hook) {
		testDSRTooBigEndToEnd(t, hook, ForwardingDSRGUE, false, false)
	})
}
