//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/testenv"
)

// TestForwardThroughFIB runs translated packets through bpf_fib_lookup in a
// namespace that routes the backends: with a resolved neighbour the program
// writes the MAC addresses itself and redirects; without one tc leaves the
// Ethernet header to bpf_redirect_neigh, and XDP the packet to the stack.
func TestForwardThroughFIB(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newFixture(t, h)
		neighbourMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
		var ifindex int
		var devMAC net.HardwareAddr
		err := inNetns(f.ns, func() error {
			// A veth pair, since not every kernel has the dummy driver.
			if err := addVeth("weir-d0", "weir-d1"); err != nil {
				return err
			}
			if err := testenv.ConfigureLink("weir-d1"); err != nil {
				return err
			}
			if err := testenv.ConfigureLink("weir-d0", "203.0.113.1/24", "2001:db8:1::1/64"); err != nil {
				return err
			}
			if err := enableForwarding(); err != nil {
				return err
			}
			for _, be := range []netip.AddrPort{backends4[0], backends6[0]} {
				if err := addNeighbour("weir-d0", be.Addr(), neighbourMAC); err != nil {
					return err
				}
			}
			var err error
			if ifindex, err = linkIndex("weir-d0"); err != nil {
				return err
			}
			devMAC, err = linkMAC("weir-d0")
			return err
		})
		if err != nil {
			t.Fatalf("set up namespace: %v", err)
		}

		m := f.d.opts.TableSize
		tests := []struct {
			name      string
			svc       Service
			backend   uint32 // index into the family's backends; 0 has a neighbour entry
			backends  []netip.AddrPort
			packet    testPacket
			neighbour bool
		}{
			{"IPv4, neighbour known", Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}, 0, backends4,
				testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}, true},
			{"IPv4, neighbour unknown", Service{ID: 1, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}, 1, backends4,
				testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("q")}, false},
			{"IPv6, neighbour known", Service{ID: 2, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6}, 0, backends6,
				testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN}, true},
			{"IPv6, neighbour unknown", Service{ID: 3, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6}, 1, backends6,
				testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("q")}, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				table := constantTable(m, tc.backend)
				f.setService(tc.svc, tc.backends, table)
				want := tc.packet
				want.src = netip.AddrPortFrom(tc.svc.SNAT, expectedSNATPort(tc.packet.src, tc.packet.dst, tc.packet.proto))
				want.dst = tc.backends[tc.backend]
				wantFrame := want.build()
				if tc.neighbour {
					copy(wantFrame[0:6], neighbourMAC)
					copy(wantFrame[6:12], devMAC)
				}
				ret, out := runProg(t, f.prog(), f.ns, tc.packet.build(), ifindex)
				if h.xdp && !tc.neighbour {
					// XDP leaves it untouched to the stack and the tc build, storing nothing.
					expectSame(t, "left to the stack", ret, out[:len(wantFrame)], xdpPass, tc.packet.build())
					var e bpf.WeirCtEntry
					if err := f.d.objs.WeirV1Ct.Lookup(clientFlow(tc.packet), &e); !errors.Is(err, ebpf.ErrKeyNotExist) {
						t.Errorf("conntrack entry after a packet XDP left to the stack: %+v, %v; want none", e, err)
					}
					return
				}
				// The packet arrives on the device it leaves by: XDP sends it with XDP_TX.
				expectFrame(t, "forwarded", ret, out, h.bounce(), wantFrame)
			})
		}
	})
}

// TestXDPLeavesUnresolvedNeighbourToTC runs the two builds as XDP mode
// stacks them, XDP in front of tc on the same interface. A new flow whose
// backend's neighbour is unresolved passes XDP untouched, with nothing
// stored but its SNAT port's reverse entry (which the same flow takes over
// on every try); the tc build behind it translates the packet through
// bpf_redirect_neigh and counts one new flow; once the neighbour is known,
// XDP forwards the flow's packets itself.
func TestXDPLeavesUnresolvedNeighbourToTC(t *testing.T) {
	f := newRoutedFixture(t, xdpHook, longTTL)
	svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	f.setService(svc, backends4, constantTable(f.d.opts.TableSize, 0))
	f.in(func() error { return deleteNeighbour(backendLink, backends4[0].Addr()) })
	p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
	snat := netip.AddrPortFrom(snat4, expectedSNATPort(p.src, p.dst, p.proto))

	for i := range 2 {
		ret, out := f.send(p)
		expectSame(t, fmt.Sprintf("XDP, try %d", i), ret, out, xdpPass, p.build())
	}
	var e bpf.WeirCtEntry
	if err := f.d.objs.WeirV1Ct.Lookup(clientFlow(p), &e); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("conntrack entry after XDP passed the packet: %+v, %v; want none", e, err)
	}
	if st := serviceState(t, f.d, svc.ID); st.Stats.Packets != 0 || st.Stats.NewFlows != 0 {
		t.Errorf("XDP counted %+v for packets it passed, want nothing", st.Stats)
	}

	ret, out := runProg(t, f.d.objs.WeirIngress, f.ns, p.build(), f.clientIf)
	expectFrame(t, "tc behind XDP", ret, out, tcActRedirect, forwarded(p, snat, backends4[0], macDst[:], macSrc[:]))

	f.in(func() error { return addNeighbour(backendLink, backends4[0].Addr(), backendMAC(0)) })
	p.tcpFlags = tcpACK
	ret, out = f.send(p)
	expectFrame(t, "XDP once the neighbour is known", ret, out, xdpRedirect,
		forwarded(p, snat, backends4[0], backendMAC(0), f.backendDev))
	if st := serviceState(t, f.d, svc.ID); st.Stats.Packets != 2 || st.Stats.NewFlows != 1 {
		t.Errorf("counters %+v, want 2 packets of 1 new flow", st.Stats)
	}
}
