//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/bpf"
)

// These tests cover SNAT port reclaim. Flows are made idle by writing their
// entries' last-seen time into the past, never by waiting for the clock.

// Closing bits of ct_entry.tcp (WEIR_TCP_* in bpf/weir.h).
const (
	tcpFinClient  = 0x1
	tcpFinBackend = 0x2
	tcpRstSeen    = 0x4
	tcpBothFins   = tcpFinClient | tcpFinBackend
)

// TCP header flags the tests send.
const (
	tcpFIN = 0x01
	tcpRST = 0x04
)

// seenReclaiming is WEIR_SEEN_RECLAIMING: a port another CPU is reclaiming.
const seenReclaiming = ^uint64(0)

// Timeouts of newReclaimFixture: short enough that the machine has been up
// longer, so that entries can be backdated past them.
const (
	testClosedTimeout  = 2 * time.Second
	testTCPIdleTimeout = 10 * time.Second
	testUDPIdleTimeout = 5 * time.Second
)

// otherClient owns the SNAT ports occupySNATPorts hands out.
var otherClient = netip.MustParseAddrPort("198.51.100.99:1")

// coarseNow reads the clock bpf_ktime_get_coarse_ns reads.
func coarseNow(t testing.TB) uint64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		t.Fatalf("read CLOCK_MONOTONIC_COARSE: %v", err)
	}
	return uint64(ts.Nano())
}

// ago is the coarse clock reading d before now; it fails t when the
// machine has not been up that long.
func ago(t testing.TB, d time.Duration) uint64 {
	t.Helper()
	now := coarseNow(t)
	if now <= uint64(d.Nanoseconds()) {
		t.Fatalf("up for %d ns only: cannot backdate an entry by %s", now, d)
	}
	return now - uint64(d.Nanoseconds())
}

// snatKey is the reverse-NAT key of p's flow on SNAT port port towards be.
func snatKey(p testPacket, be netip.AddrPort, port uint16) bpf.WeirFlow {
	snat := snat4
	if p.src.Addr().Is6() {
		snat = snat6
	}
	return bpf.WeirFlow{Src: addr16(be.Addr()), Dst: addr16(snat), Sport: be.Port(), Dport: port,
		Proto: p.proto, IpVersion: ipVersion(be.Addr())}
}

// newReclaimFixture is newFixture with these timeouts.
func newReclaimFixture(t *testing.T, h hook) *fixture {
	t.Helper()
	needBPF(t)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	opts.ClosedFlowTimeout = testClosedTimeout
	opts.TCPIdleTimeout = testTCPIdleTimeout
	opts.UDPIdleTimeout = testUDPIdleTimeout
	return &fixture{t: t, h: h, d: openAt(t, opts), ns: newNetns(t)}
}

// translatedTo checks that p came out from snat4:port to be.
func (f *fixture) translatedTo(what string, p testPacket, be netip.AddrPort, port uint16) {
	f.t.Helper()
	want := p
	want.src, want.dst = netip.AddrPortFrom(snat4, port), be
	ret, out := f.run(p.build())
	expectFrame(f.t, what, ret, out, f.verdict(tcActOK), want.build())
}

// TestSNATPortReclaim fills every port a new flow probes with another
// flow's reverse entry in some state of liveness: a closed or idle flow's
// port goes to the new flow (whose packet is translated), and the old
// flow's conntrack entry goes with it; a live flow's port is never taken.
func TestSNATPortReclaim(t *testing.T) {
	tests := []struct {
		name    string
		proto   uint8
		idle    time.Duration
		tcp     uint32
		reclaim bool
	}{
		{"closed TCP flow idle past the closed timeout", ProtoTCP, testClosedTimeout + time.Second, tcpBothFins, true},
		{"reset TCP flow idle past the closed timeout", ProtoTCP, testClosedTimeout + time.Second, tcpRstSeen, true},
		{"open TCP flow idle past the TCP idle timeout", ProtoTCP, testTCPIdleTimeout + time.Second, 0, true},
		{"UDP flow idle past the UDP idle timeout", ProtoUDP, testUDPIdleTimeout + time.Second, 0, true},
		{"fresh open TCP flow", ProtoTCP, 0, 0, false},
		{"open TCP flow idle past the closed timeout only", ProtoTCP, testClosedTimeout + time.Second, 0, false},
		{"half-closed TCP flow idle past the closed timeout", ProtoTCP, testClosedTimeout + time.Second, tcpFinClient, false},
		{"closed TCP flow within the closed timeout", ProtoTCP, time.Second, tcpBothFins, false},
		{"UDP flow within the UDP idle timeout", ProtoUDP, testUDPIdleTimeout - time.Second, 0, false},
	}
	forHooks(t, func(t *testing.T, h hook) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newReclaimFixture(t, h)
				vip := vip4TCP
				if tc.proto == ProtoUDP {
					vip = vip4UDP
				}
				svc := Service{ID: 1, VIP: vip, Proto: tc.proto, SNAT: snat4}
				f.setService(svc, backends4, constantTable(f.d.opts.TableSize, 0))
				be := backends4[0]
				p := testPacket{src: client4, dst: vip, proto: tc.proto, tcpFlags: tcpSYN}
				occupySNATPorts(t, f.d, p, be, ago(t, tc.idle), tc.tcp)
				// The old owner of the first probed port still has its conntrack entry.
				port := expectedSNATPort(p.src, p.dst, p.proto)
				oldKey := bpf.WeirFlow{Src: addr16(otherClient.Addr()), Dst: addr16(vip.Addr()), Sport: otherClient.Port(),
					Dport: vip.Port(), Proto: tc.proto, IpVersion: 4}
				var oldFwd bpf.WeirCtEntry
				oldFwd.Nat.Src, oldFwd.Nat.Dst = addr16(snat4), addr16(be.Addr())
				oldFwd.Nat.Sport, oldFwd.Nat.Dport = port, be.Port()
				oldFwd.Nat.ServiceId = entry(t, f.d.objs.WeirV1Rnat, snatKey(p, be, port)).Nat.ServiceId
				if err := f.d.objs.WeirV1Ct.Put(oldKey, oldFwd); err != nil {
					t.Fatalf("put the old owner's conntrack entry: %v", err)
				}

				if !tc.reclaim {
					if ret, _ := f.run(p.build()); ret != f.verdict(tcActShot) {
						t.Errorf("verdict %d, want drop: no port may be taken from a live flow", ret)
					}
					if got := entry(t, f.d.objs.WeirV1Rnat, snatKey(p, be, port)); addrFrom16(got.Nat.Dst, 4) != otherClient.Addr() {
						t.Errorf("port %d now leads to %+v, want it kept by %s", port, got.Nat, otherClient)
					}
					return
				}
				f.translatedTo("new flow on a reclaimed port", p, be, port)
				rv := entry(t, f.d.objs.WeirV1Rnat, snatKey(p, be, port))
				if addrFrom16(rv.Nat.Dst, 4) != p.src.Addr() || rv.Nat.Dport != p.src.Port() || rv.Tcp != 0 {
					t.Errorf("reclaimed port's reverse entry %+v (tcp %#x), want it leading to %s, open", rv.Nat, rv.Tcp, p.src)
				}
				if now := coarseNow(t); rv.Seen > now || now-rv.Seen > uint64(time.Second) {
					t.Errorf("reclaimed port last seen at %d, want about now (%d)", rv.Seen, now)
				}
				var gone bpf.WeirCtEntry
				if err := f.d.objs.WeirV1Ct.Lookup(oldKey, &gone); err == nil {
					t.Errorf("the old owner's conntrack entry survived the reclaim: %+v", gone)
				}
				reply := testPacket{src: be, dst: netip.AddrPortFrom(snat4, port), proto: tc.proto, tcpFlags: tcpACK}
				want := reply
				want.src, want.dst = vip, client4
				ret, out := f.run(reply.build())
				expectFrame(t, "reply on the reclaimed port", ret, out, f.verdict(tcActOK), want.build())
			})
		}
	})
}

// TestClosingPacketsMarkBothEntries sends FINs and RSTs each way and reads
// the closing bits of both of the flow's entries.
func TestClosingPacketsMarkBothEntries(t *testing.T) {
	type step struct {
		fromClient bool
		flags      uint8
	}
	tests := []struct {
		name  string
		steps []step
		want  uint32
	}{
		{"client FIN", []step{{true, tcpFIN | tcpACK}}, tcpFinClient},
		{"backend FIN", []step{{false, tcpFIN | tcpACK}}, tcpFinBackend},
		{"FIN each way", []step{{true, tcpFIN | tcpACK}, {false, tcpFIN | tcpACK}}, tcpBothFins},
		{"client RST", []step{{true, tcpRST}}, tcpRstSeen},
		{"backend RST", []step{{false, tcpRST | tcpACK}}, tcpRstSeen},
		{"data only", []step{{true, tcpACK}, {false, tcpACK}}, 0},
	}
	forHooks(t, func(t *testing.T, h hook) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newReclaimFixture(t, h)
				svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
				table := constantTable(f.d.opts.TableSize, 1)
				f.setService(svc, backends4, table)
				syn := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
				be, port := f.translate(syn, backends4, table, snat4)
				for _, s := range tc.steps {
					p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: s.flags}
					if !s.fromClient {
						p.src, p.dst = be, netip.AddrPortFrom(snat4, port)
					}
					if ret, _ := f.run(p.build()); ret != f.verdict(tcActOK) {
						t.Fatalf("flags %#x: verdict %d, want pass", s.flags, ret)
					}
				}
				fwd := entry(t, f.d.objs.WeirV1Ct, clientFlow(syn))
				rev := entry(t, f.d.objs.WeirV1Rnat, snatKey(syn, be, port))
				if fwd.Tcp != tc.want || rev.Tcp != tc.want {
					t.Errorf("closing bits: conntrack %#x, reverse %#x; want %#x in both", fwd.Tcp, rev.Tcp, tc.want)
				}
			})
		}
	})
}

// TestOneWayFlowKeepsReverseEntryAlive backdates both entries of a UDP flow
// whose backend never answers: the client's next packet refreshes both, so
// the flow's SNAT port does not look idle.
func TestOneWayFlowKeepsReverseEntryAlive(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newReclaimFixture(t, h)
		svc := Service{ID: 0, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}
		table := constantTable(f.d.opts.TableSize, 2)
		f.setService(svc, backends4, table)
		p := testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("stream")}
		be, port := f.translate(p, backends4, table, snat4)
		stale := ago(t, testUDPIdleTimeout+time.Second)
		for _, m := range []struct {
			name string
			key  bpf.WeirFlow
		}{{"conntrack", clientFlow(p)}, {"reverse", snatKey(p, be, port)}} {
			objs := f.d.objs.WeirV1Ct
			if m.name == "reverse" {
				objs = f.d.objs.WeirV1Rnat
			}
			e := entry(t, objs, m.key)
			e.Seen = stale
			if err := objs.Update(m.key, e, 0); err != nil {
				t.Fatalf("backdate the %s entry: %v", m.name, err)
			}
		}
		f.translate(p, backends4, table, snat4)
		if got := entry(t, f.d.objs.WeirV1Ct, clientFlow(p)).Seen; got <= stale {
			t.Errorf("conntrack entry last seen %d, not refreshed from %d", got, stale)
		}
		if got := entry(t, f.d.objs.WeirV1Rnat, snatKey(p, be, port)).Seen; got <= stale {
			t.Errorf("reverse entry last seen %d, not refreshed from %d", got, stale)
		}
	})
}

// TestLostPortMovesFlow plays the loser of a race for a SNAT port: the
// flow's reverse entry is taken over (by another flow, or is being
// reclaimed) after its conntrack entry was made. On its next check the flow
// moves to its next probed port and leaves the winner's entry alone.
func TestLostPortMovesFlow(t *testing.T) {
	tests := []struct {
		name        string
		reclaiming  bool
		wantOwnedBy netip.AddrPort
	}{
		{"another flow holds the port", false, otherClient},
		{"the port is being reclaimed", true, client4},
	}
	forHooks(t, func(t *testing.T, h hook) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newReclaimFixture(t, h)
				svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
				table := constantTable(f.d.opts.TableSize, 0)
				f.setService(svc, backends4, table)
				p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK}
				be, port := f.translate(p, backends4, table, snat4)
				rk := snatKey(p, be, port)
				taken := entry(t, f.d.objs.WeirV1Rnat, rk)
				if tc.reclaiming {
					taken.Seen = seenReclaiming
				} else {
					taken.Nat.Dst, taken.Nat.Dport = addr16(otherClient.Addr()), otherClient.Port()
					taken.Seen = coarseNow(t)
				}
				if err := f.d.objs.WeirV1Rnat.Update(rk, taken, 0); err != nil {
					t.Fatalf("take port %d: %v", port, err)
				}
				expire(t, f.d, f.d.objs.WeirV1Ct, clientFlow(p))

				next := snatProbe(p.src, p.dst, p.proto, 1)
				f.translatedTo("flow that lost its port", p, be, next)
				if got := entry(t, f.d.objs.WeirV1Ct, clientFlow(p)); got.Nat.Sport != next {
					t.Errorf("conntrack entry on port %d, want %d", got.Nat.Sport, next)
				}
				mine := entry(t, f.d.objs.WeirV1Rnat, snatKey(p, be, next))
				if addrFrom16(mine.Nat.Dst, 4) != client4.Addr() || mine.Nat.Dport != client4.Port() {
					t.Errorf("port %d leads to %+v, want %s", next, mine.Nat, client4)
				}
				if got := entry(t, f.d.objs.WeirV1Rnat, rk); got != taken {
					t.Errorf("the winner's entry changed:\n got %+v\nwant %+v", got, taken)
				}
			})
		}
	})
}
