//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/testenv"
)

// These tests cover what conntrack entries cache: the forwarding decision
// and the checks an established packet skips. A long FlowCacheTTL makes
// "the entry is still fresh" deterministic; expire makes "the TTL has
// passed" deterministic. Neither waits for the clock.

// longTTL outlives any test, so an entry only goes stale through expire.
const longTTL = time.Hour

// enum fwd_action (bpf/weir.h).
const (
	fwdNone     = 0
	fwdRedirect = 1
)

// Interfaces of routedFixture's namespace: backends behind one veth,
// clients behind the other.
const (
	backendLink = "weir-d0"
	clientLink  = "weir-d1"
)

// clientMAC is the neighbour entry of both clients.
var clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 2, 1}

// backendMAC is the neighbour entry of backends4[i] and backends6[i].
func backendMAC(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 1, byte(i)} }

// routedFixture runs the program in a namespace that routes and forwards:
// translated packets end in bpf_redirect with MAC addresses from the FIB.
type routedFixture struct {
	*fixture
	backendIf, clientIf   int
	backendDev, clientDev net.HardwareAddr
}

func newRoutedFixture(t *testing.T, h hook, ttl time.Duration) *routedFixture {
	t.Helper()
	needBPF(t)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	opts.FlowCacheTTL = ttl
	f := &routedFixture{fixture: &fixture{t: t, h: h, d: openAt(t, opts), ns: newNetns(t)}}
	err := inNetns(f.ns, func() error {
		if err := addVeth(backendLink, clientLink); err != nil {
			return err
		}
		if err := testenv.ConfigureLink(backendLink, "203.0.113.1/24", "2001:db8:1::1/64"); err != nil {
			return err
		}
		if err := testenv.ConfigureLink(clientLink, "198.51.100.1/24", "2001:db8:c::1/64"); err != nil {
			return err
		}
		if err := enableForwarding(); err != nil {
			return err
		}
		for i := range backends4 {
			if err := addNeighbour(backendLink, backends4[i].Addr(), backendMAC(i)); err != nil {
				return err
			}
			if err := addNeighbour(backendLink, backends6[i].Addr(), backendMAC(i)); err != nil {
				return err
			}
		}
		for _, c := range []netip.AddrPort{client4, client6} {
			if err := addNeighbour(clientLink, c.Addr(), clientMAC); err != nil {
				return err
			}
		}
		return f.readLinks()
	})
	if err != nil {
		t.Fatalf("set up namespace: %v", err)
	}
	return f
}

// readLinks records the interfaces' indexes and MAC addresses; call it in
// the namespace.
func (f *routedFixture) readLinks() error {
	var err error
	if f.backendIf, err = linkIndex(backendLink); err != nil {
		return err
	}
	if f.clientIf, err = linkIndex(clientLink); err != nil {
		return err
	}
	if f.backendDev, err = linkMAC(backendLink); err != nil {
		return err
	}
	f.clientDev, err = linkMAC(clientLink)
	return err
}

// in runs step in the fixture's namespace.
func (f *routedFixture) in(step func() error) {
	f.t.Helper()
	if err := inNetns(f.ns, step); err != nil {
		f.t.Fatal(err)
	}
}

// send runs a client's packet (arriving on the client link) through the
// program.
func (f *routedFixture) send(p testPacket) (uint32, []byte) {
	f.t.Helper()
	return runProg(f.t, f.prog(), f.ns, p.build(), f.clientIf)
}

// sendReply runs a backend's packet (arriving on the backend link).
func (f *routedFixture) sendReply(p testPacket) (uint32, []byte) {
	f.t.Helper()
	return runProg(f.t, f.prog(), f.ns, p.build(), f.backendIf)
}

// forwarded is p addressed from src to dst as it leaves through a
// neighbour with MAC dmac from a device with MAC smac.
func forwarded(p testPacket, src, dst netip.AddrPort, dmac, smac net.HardwareAddr) []byte {
	p.src, p.dst = src, dst
	frame := p.build()
	copy(frame[0:6], dmac)
	copy(frame[6:12], smac)
	return frame
}

// entry reads the conntrack entry at key of m.
func entry(t testing.TB, m *ebpf.Map, key bpf.WeirFlow) bpf.WeirCtEntry {
	t.Helper()
	var e bpf.WeirCtEntry
	if err := m.Lookup(key, &e); err != nil {
		t.Fatalf("look up entry %+v of %s: %v", key, m, err)
	}
	return e
}

// expire makes the conntrack entry at key of m (weir_v1_ct or weir_v1_rnat)
// look as if d's flow cache TTL had passed since its last check, so that
// its next packet takes the full path: deterministic, where waiting for the
// clock would not be.
func expire(t testing.TB, d *Dataplane, m *ebpf.Map, key bpf.WeirFlow) {
	t.Helper()
	e := entry(t, m, key)
	ttl := uint64(d.opts.FlowCacheTTL.Nanoseconds())
	if e.Fwd.Stamp > ttl {
		e.Fwd.Stamp -= ttl
	} else {
		// Too early after boot to backdate: withdraw the decision instead.
		e.Fwd.Action = fwdNone
	}
	if err := m.Update(key, e, ebpf.UpdateExist); err != nil {
		t.Fatalf("age entry %+v of %s: %v", key, m, err)
	}
}

// clientFlow is the conntrack key of a client's packet p.
func clientFlow(p testPacket) bpf.WeirFlow {
	return bpf.WeirFlow{Src: addr16(p.src.Addr()), Dst: addr16(p.dst.Addr()), Sport: p.src.Port(),
		Dport: p.dst.Port(), Proto: p.proto, IpVersion: ipVersion(p.src.Addr())}
}

// expectSame fails unless got is want byte for byte, verdict included.
func expectSame(t *testing.T, what string, gotRet uint32, got []byte, wantRet uint32, want []byte) {
	t.Helper()
	if gotRet != wantRet {
		t.Errorf("%s: verdict %d, want %d", what, gotRet, wantRet)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: frame differs\n got %x\nwant %x", what, got, want)
	}
}

// TestCachedPathMatchesFullPath checks, both ways and for every kind of
// packet, that a packet translated from its conntrack entry's cache is
// byte for byte the packet the full path (backend choice or recheck, route
// lookup) makes, and that the cache is what served it.
func TestCachedPathMatchesFullPath(t *testing.T) {
	tests := []struct {
		name   string
		svc    Service
		bes    []netip.AddrPort
		packet testPacket
		reply  testPacket // addresses filled in by the test
	}{
		{"IPv4 TCP", Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}, backends4,
			testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("get")},
			testPacket{proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("200 ok")}},
		{"IPv4 UDP", Service{ID: 1, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}, backends4,
			testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("query")},
			testPacket{proto: ProtoUDP, payload: []byte("answer")}},
		{"IPv4 UDP without checksum", Service{ID: 1, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}, backends4,
			testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("q"), zeroUDPCsum: true},
			testPacket{proto: ProtoUDP, payload: []byte("a"), zeroUDPCsum: true}},
		{"IPv6 TCP", Service{ID: 2, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6}, backends6,
			testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("get")},
			testPacket{proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("200 ok")}},
		{"IPv6 UDP behind destination options", Service{ID: 3, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6}, backends6,
			testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("q6"), ext6: []uint8{ext6DstOpts}},
			testPacket{proto: ProtoUDP, payload: []byte("a6")}},
	}
	forHooks(t, func(t *testing.T, h hook) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newRoutedFixture(t, h, longTTL)
				const be = 2
				f.setService(tc.svc, tc.bes, constantTable(f.d.opts.TableSize, be))
				snat := netip.AddrPortFrom(tc.svc.SNAT, expectedSNATPort(tc.packet.src, tc.packet.dst, tc.packet.proto))
				want := forwarded(tc.packet, snat, tc.bes[be], backendMAC(be), f.backendDev)
				key := clientFlow(tc.packet)

				ret, full := f.send(tc.packet)
				expectFrame(t, "new flow", ret, full, f.verdict(tcActRedirect), want)
				cached := entry(t, f.d.objs.WeirV1Ct, key)
				if cached.Fwd.Action != fwdRedirect || int(cached.Fwd.Ifindex) != f.backendIf {
					t.Fatalf("conntrack caches %+v, want a redirect to ifindex %d", cached.Fwd, f.backendIf)
				}
				ret, out := f.send(tc.packet)
				expectSame(t, "cached", ret, out, f.verdict(tcActRedirect), full)
				if got := entry(t, f.d.objs.WeirV1Ct, key); got != cached {
					t.Errorf("the cached packet rewrote its entry:\n got %+v\nwant %+v", got, cached)
				}
				expire(t, f.d, f.d.objs.WeirV1Ct, key)
				ret, out = f.send(tc.packet)
				expectSame(t, "rechecked", ret, out, f.verdict(tcActRedirect), full)

				reply := tc.reply
				reply.src, reply.dst = tc.bes[be], snat
				wantReply := forwarded(reply, tc.packet.dst, tc.packet.src, clientMAC, f.clientDev)
				ret, full = f.sendReply(reply)
				expectFrame(t, "first reply", ret, full, f.verdict(tcActRedirect), wantReply)
				rkey := clientFlow(reply)
				cached = entry(t, f.d.objs.WeirV1Rnat, rkey)
				ret, out = f.sendReply(reply)
				expectSame(t, "cached reply", ret, out, f.verdict(tcActRedirect), full)
				if got := entry(t, f.d.objs.WeirV1Rnat, rkey); got != cached || got.Fwd.Action != fwdRedirect {
					t.Errorf("reverse entry after a cached reply %+v, want %+v with a redirect", got, cached)
				}

				st := serviceState(t, f.d, tc.svc.ID)
				if st.Stats.Packets != 5 || st.Stats.NewFlows != 1 || st.BackendStats[be].Packets != 5 {
					t.Errorf("counters %+v, backend %+v: want 5 packets of 1 new flow, all via backend %d",
						st.Stats, st.BackendStats[be], be)
				}
			})
		}
	})
}

// TestStaleForwardingIsLookedUpAgain changes the neighbour, then the
// interface, behind an established flow: the cached decision stands until
// the entry is older than the TTL, and then follows the kernel's tables.
func TestStaleForwardingIsLookedUpAgain(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
		f.setService(svc, backends4, constantTable(f.d.opts.TableSize, 0))
		p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK}
		snat := netip.AddrPortFrom(snat4, expectedSNATPort(p.src, p.dst, p.proto))
		key := clientFlow(p)
		check := func(what string, dmac net.HardwareAddr, ifindex int) {
			t.Helper()
			ret, out := f.send(p)
			expectFrame(t, what, ret, out, f.verdict(tcActRedirect), forwarded(p, snat, backends4[0], dmac, f.backendDev))
			if e := entry(t, f.d.objs.WeirV1Ct, key); e.Fwd.Action != fwdRedirect || int(e.Fwd.Ifindex) != ifindex {
				t.Errorf("%s: entry caches %+v, want a redirect to ifindex %d", what, e.Fwd, ifindex)
			}
		}
		check("established", backendMAC(0), f.backendIf)

		// The backend's MAC address changes: the entry keeps the old one until
		// its TTL has passed.
		moved := net.HardwareAddr{0x02, 0, 0, 0, 0xee, 1}
		f.in(func() error { return replaceNeighbour(backendLink, backends4[0].Addr(), moved) })
		check("fresh entry, neighbour changed", backendMAC(0), f.backendIf)
		expire(t, f.d, f.d.objs.WeirV1Ct, key)
		check("stale entry, neighbour changed", moved, f.backendIf)

		// The neighbour is forgotten: tc's bpf_redirect_neigh resolves it,
		// leaving the MAC addresses as they came, and nothing is cached
		// meanwhile. XDP leaves the packet, and the entry, untouched to the
		// stack (and the tc build behind it).
		f.in(func() error { return deleteNeighbour(backendLink, backends4[0].Addr()) })
		expire(t, f.d, f.d.objs.WeirV1Ct, key)
		stale := entry(t, f.d.objs.WeirV1Ct, key)
		for i := range 2 {
			ret, out := f.send(p)
			e := entry(t, f.d.objs.WeirV1Ct, key)
			if h.xdp {
				expectSame(t, "no neighbour", ret, out, xdpPass, p.build())
				if e != stale {
					t.Errorf("packet %d without a neighbour changed the entry to %+v, want %+v", i, e, stale)
				}
				continue
			}
			expectFrame(t, "no neighbour", ret, out, tcActRedirect, forwarded(p, snat, backends4[0], macDst[:], macSrc[:]))
			if e.Fwd.Action != fwdNone {
				t.Errorf("packet %d without a neighbour cached %+v", i, e.Fwd)
			}
		}
		f.in(func() error { return addNeighbour(backendLink, backends4[0].Addr(), backendMAC(0)) })
		check("neighbour back", backendMAC(0), f.backendIf)

		// The interfaces go away (a veth takes its peer with it) and the
		// prefixes come back on new ones: the stale entry follows the route.
		oldIf := f.backendIf
		f.in(func() error {
			if err := deleteLink(backendLink); err != nil {
				return err
			}
			if err := addVeth(backendLink, clientLink); err != nil {
				return err
			}
			if err := testenv.ConfigureLink(backendLink, "203.0.113.1/24"); err != nil {
				return err
			}
			if err := testenv.ConfigureLink(clientLink, "198.51.100.1/24"); err != nil {
				return err
			}
			if err := addNeighbour(backendLink, backends4[0].Addr(), moved); err != nil {
				return err
			}
			return f.readLinks()
		})
		if f.backendIf == oldIf {
			t.Fatalf("the new interface reuses ifindex %d", oldIf)
		}
		expire(t, f.d, f.d.objs.WeirV1Ct, key)
		check("interface replaced", moved, f.backendIf)
	})
}

// TestCacheCoversPacketsTheMTUAllows checks the length a cached decision
// covers: the FIB is asked about a full-size packet even when the flow
// starts with a small one, and where the MTU is smaller, longer packets
// than the one looked up take the full path (and on to the kernel when
// they do not fit).
func TestCacheCoversPacketsTheMTUAllows(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
		f.setService(svc, backends4, constantTable(f.d.opts.TableSize, 0))
		syn := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
		full := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: make([]byte, 1400)}
		snat := netip.AddrPortFrom(snat4, expectedSNATPort(syn.src, syn.dst, syn.proto))
		key := clientFlow(syn)
		send := func(what string, p testPacket, wantRet uint32, wantMaxLen uint16, wantAction uint8) {
			t.Helper()
			ret, out := f.send(p)
			want := forwarded(p, snat, backends4[0], backendMAC(0), f.backendDev)
			if wantRet != tcActRedirect {
				copy(want, p.build()[:12]) // the kernel routes it: MAC addresses as they came
			}
			expectFrame(t, what, ret, out, f.verdict(wantRet), want)
			if e := entry(t, f.d.objs.WeirV1Ct, key); e.Fwd.MaxLen != wantMaxLen || e.Fwd.Action != wantAction {
				t.Errorf("%s: entry caches %+v, want action %d up to %d bytes", what, e.Fwd, wantAction, wantMaxLen)
			}
		}
		send("SYN", syn, tcActRedirect, 1500, fwdRedirect)
		send("full-size packet", full, tcActRedirect, 1500, fwdRedirect)

		f.in(func() error { return setMTU(backendLink, 1280) })
		expire(t, f.d, f.d.objs.WeirV1Ct, key)
		send("small packet, MTU 1280", syn, tcActRedirect, 40, fwdRedirect)
		send("packet above the MTU", full, tcActOK, 0, fwdNone)
		send("small packet again", syn, tcActRedirect, 40, fwdRedirect)
	})
}

// TestDefaultTTLExpires runs the stale case with the default TTL: an entry
// backdated by one TTL is looked up again.
func TestDefaultTTLExpires(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, 0)
		if f.d.opts.FlowCacheTTL != DefaultFlowCacheTTL {
			t.Fatalf("FlowCacheTTL %s, want the default %s", f.d.opts.FlowCacheTTL, DefaultFlowCacheTTL)
		}
		svc := Service{ID: 1, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6}
		f.setService(svc, backends6, constantTable(f.d.opts.TableSize, 1))
		p := testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK}
		snat := netip.AddrPortFrom(snat6, expectedSNATPort(p.src, p.dst, p.proto))
		ret, out := f.send(p)
		expectFrame(t, "established", ret, out, f.verdict(tcActRedirect), forwarded(p, snat, backends6[1], backendMAC(1), f.backendDev))

		moved := net.HardwareAddr{0x02, 0, 0, 0, 0xee, 6}
		f.in(func() error { return replaceNeighbour(backendLink, backends6[1].Addr(), moved) })
		before := entry(t, f.d.objs.WeirV1Ct, clientFlow(p))
		expire(t, f.d, f.d.objs.WeirV1Ct, clientFlow(p))
		ret, out = f.send(p)
		expectFrame(t, "after the TTL", ret, out, f.verdict(tcActRedirect), forwarded(p, snat, backends6[1], moved, f.backendDev))
		if after := entry(t, f.d.objs.WeirV1Ct, clientFlow(p)); after.Fwd.Stamp < before.Fwd.Stamp {
			t.Errorf("entry stamped %d after the lookup, before %d", after.Fwd.Stamp, before.Fwd.Stamp)
		}
	})
}

// TestCachedFlowFollowsServiceChanges checks that a fresh cache never
// outlives the service state it was checked against: a table change keeps
// the flow on its backend, a removed backend moves it at once, and a
// deleted and re-created service does not resurrect it.
func TestCachedFlowFollowsServiceChanges(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		m := f.d.opts.TableSize
		svc := Service{ID: 2, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
		p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK}
		snat := netip.AddrPortFrom(snat4, expectedSNATPort(p.src, p.dst, p.proto))
		goesTo := func(what string, be int) {
			t.Helper()
			ret, out := f.send(p)
			expectFrame(t, what, ret, out, f.verdict(tcActRedirect), forwarded(p, snat, backends4[be], backendMAC(be), f.backendDev))
		}

		f.setService(svc, backends4, constantTable(m, 0))
		goesTo("new flow", 0)
		gen := f.setService(svc, backends4, constantTable(m, 1))
		goesTo("after a table change", 0)
		if e := entry(t, f.d.objs.WeirV1Ct, clientFlow(p)); e.Generation != gen {
			t.Errorf("entry checked in generation %d, want %d", e.Generation, gen)
		}
		// Backend 0 leaves; entry 0 of the new table is backends4[1].
		f.setService(svc, backends4[1:], constantTable(m, 0))
		goesTo("after its backend left", 1)

		if err := f.d.DeleteService(svc.ID); err != nil {
			t.Fatal(err)
		}
		if ret, out := f.send(p); ret != f.verdict(tcActOK) || !bytes.Equal(out, p.build()) {
			t.Errorf("packet to a deleted service: verdict %d, frame changed %v; want it untouched",
				ret, !bytes.Equal(out, p.build()))
		}
		// Re-created with the same backends: the flow keeps backend 1 (still
		// live) even though the new table points elsewhere...
		f.setService(svc, backends4[1:], constantTable(m, 1))
		goesTo("after re-creation", 1)
		// ...but re-created without it, it moves: the old entry's generation
		// is not the new one.
		if err := f.d.DeleteService(svc.ID); err != nil {
			t.Fatal(err)
		}
		f.setService(svc, backends4[2:], constantTable(m, 0))
		goesTo("after re-creation without its backend", 2)
	})
}

// TestOpenRejectsOldLayoutMaps pins maps of layouts an older weir would
// have left: a conntrack map from before entries carried their cache, and
// services from before they had SNAT ports (44-byte values) or a
// forwarding mode (48). Open refuses each by name, as bpf/README.md's
// Versioning says, rather than misread it (a service with no ports, or
// garbage for a mode).
func TestOpenRejectsOldLayoutMaps(t *testing.T) {
	needBPF(t)
	for _, tc := range []struct {
		name, want string
		spec       func(Options) *ebpf.MapSpec
	}{
		{"conntrack without its cache", "ValueSize", func(o Options) *ebpf.MapSpec {
			return &ebpf.MapSpec{Name: bpf.WeirMapWeirV1Ct, Type: ebpf.LRUHash, KeySize: 40, ValueSize: 40, MaxEntries: o.MaxFlows}
		}},
		{"services without SNAT ports", "ValueSize: 44 changed to 52", func(o Options) *ebpf.MapSpec {
			return &ebpf.MapSpec{Name: bpf.WeirMapWeirV1Svc, Type: ebpf.Array, KeySize: 4, ValueSize: 44, MaxEntries: 2 * o.MaxServices}
		}},
		{"services without a forwarding mode", "ValueSize: 48 changed to 52", func(o Options) *ebpf.MapSpec {
			return &ebpf.MapSpec{Name: bpf.WeirMapWeirV1Svc, Type: ebpf.Array, KeySize: 4, ValueSize: 48, MaxEntries: 2 * o.MaxServices}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
			if err := ensureBPFFS(opts.PinPath); err != nil {
				t.Fatal(err)
			}
			spec := tc.spec(opts)
			spec.Pinning = ebpf.PinByName
			old, err := ebpf.NewMapWithOptions(spec, ebpf.MapOptions{PinPath: opts.PinPath})
			if err != nil {
				t.Fatalf("pin an old-layout map: %v", err)
			}
			old.Close()
			d, err := Open(opts)
			if d != nil {
				d.Close()
			}
			if !errors.Is(err, ErrIncompatibleMaps) || !strings.Contains(err.Error(), spec.Name) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open over an old-layout %s: %v; want ErrIncompatibleMaps naming the map and %q", spec.Name, err, tc.want)
			}
		})
	}
}
