//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"net"
	"net/netip"
	"testing"
)

// TestForwardThroughFIB runs translated packets through bpf_fib_lookup in a
// namespace that routes the backends: with a resolved neighbour the program
// writes the MAC addresses itself and redirects; without one it leaves the
// Ethernet header to bpf_redirect_neigh.
func TestForwardThroughFIB(t *testing.T) {
	f := newFixture(t, tcHook)
	neighbourMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	var ifindex int
	var devMAC net.HardwareAddr
	err := inNetns(f.ns, func() error {
		// A veth pair, since not every kernel has the dummy driver.
		if err := addVeth("weir-d0", "weir-d1"); err != nil {
			return err
		}
		if err := configureLink("weir-d1"); err != nil {
			return err
		}
		if err := configureLink("weir-d0", "203.0.113.1/24", "2001:db8:1::1/64"); err != nil {
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
			ret, out := runProg(t, f.d.objs.WeirIngress, f.ns, tc.packet.build(), ifindex)
			expectFrame(t, "forwarded", ret, out, tcActRedirect, wantFrame)
		})
	}
}
