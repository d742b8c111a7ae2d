//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/testenv"
)

// BenchmarkProgram measures the program per packet with Program.Benchmark
// (BPF_PROG_TEST_RUN), including the forwarding path: the namespace routes
// the backends and knows their neighbours, so translated packets end in
// bpf_fib_lookup or the forwarding decision cached in conntrack, and
// bpf_redirect. Every packet is a run of its own, one syscall each, so
// every run starts with cold caches (on a virtual machine that reloads page
// tables on every system call, very cold). ns/op is the kernel's own time
// for one run (it includes two clock reads), not the syscall around it; the
// "harness" case runs a program that returns at once on the same frame, so
// the program's own cost is a case's figure minus the harness's. Each
// build of the program, tc and XDP, has its own set of cases.
func BenchmarkProgram(b *testing.B) {
	for _, h := range hooks {
		b.Run(h.name, func(b *testing.B) { benchmarkProgram(b, h) })
	}
}

func benchmarkProgram(b *testing.B, h hook) {
	d, ns := newBenchDataplane(b)
	prog := h.program(b, d)
	syn := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN, payload: make([]byte, 64)}
	established := syn
	established.tcpFlags = tcpACK
	dsr := established
	dsr.dst = dsrBenchVIP
	gue := established
	gue.dst = gueBenchVIP
	empty := emptyProgram(b, h)

	benchmarks := []struct {
		name  string
		prog  *ebpf.Program
		frame func(i int) []byte
		want  uint32
	}{
		// What one test run costs around a program that returns at once.
		{"harness", empty, constFrame(established.build()), h.verdict(tcActOK)},
		{"pass-through", prog, constFrame(passThroughFrame()), h.verdict(tcActOK)},
		{"established", prog, constFrame(established.build()), h.verdict(tcActRedirect)},
		{"new flow", prog, newFlowFrames(syn.build()), h.verdict(tcActRedirect)},
		{"reply", prog, nil, h.verdict(tcActRedirect)},
		// A DSR flow's packet: encapsulated, no port rewrite.
		{"established DSR", prog, constFrame(dsr.build()), h.verdict(tcActRedirect)},
		{"established GUE", prog, constFrame(gue.build()), h.verdict(tcActRedirect)},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			// The established and reply paths need the flow in conntrack;
			// after "new flow" filled the maps it may hold another port.
			runProg(b, prog, ns, syn.build(), 0)
			runProg(b, prog, ns, dsr.build(), 0)
			runProg(b, prog, ns, gue.build(), 0)
			frame := bm.frame
			if frame == nil {
				frame = constFrame(replyFrame(b, d, syn))
			}
			var runs []time.Duration
			err := inNetns(ns, func() error {
				var err error
				runs, err = benchmarkRuns(bm.prog, b.N, frame, bm.want)
				return err
			})
			if err != nil {
				st, _ := d.Services()
				b.Fatalf("%v; counters %+v", err, st[0].Stats)
			}
			reportRuns(b, runs)
		})
	}
}

// steadyRepeat is how many times BenchmarkProgramSteady runs the program
// per syscall.
const steadyRepeat = 1000

// BenchmarkProgramSteady measures the same paths with caches warm, as in a
// burst of packets: the kernel runs the program steadyRepeat times on one
// packet per syscall. That packet must come out as it went in, or the
// second run would measure another path, so the flow is a fixed point: the
// service balances its VIP to the VIP itself, with the client's own
// address as SNAT address and the client's port as the SNAT port the
// program picks for it. The translation writes every field it would write
// for any other flow, with the same values. ns/op is per packet; "harness"
// is the per-run cost of the test loop around a program that returns at
// once. Each build of the program, tc and XDP, has its own set of cases.
func BenchmarkProgramSteady(b *testing.B) {
	for _, h := range hooks {
		b.Run(h.name, func(b *testing.B) { benchmarkProgramSteady(b, h) })
	}
}

func benchmarkProgramSteady(b *testing.B, h hook) {
	d, ns := newBenchDataplane(b)
	prog := h.program(b, d)
	vip := netip.MustParseAddrPort("192.0.2.20:80")
	client, ok := fixedPointClient(vip)
	if !ok {
		b.Fatalf("no client address in 198.51.100.0/24 is a fixed point for %s", vip)
	}
	err := inNetns(ns, func() error {
		return errors.Join(testenv.ConfigureLink("weir-d0", "192.0.2.1/24"),
			addNeighbour("weir-d0", vip.Addr(), net.HardwareAddr{0x02, 0, 0, 0, 3, 1}),
			addNeighbour("weir-d1", client.Addr(), net.HardwareAddr{0x02, 0, 0, 0, 3, 2}))
	})
	if err != nil {
		b.Fatalf("set up namespace: %v", err)
	}
	svc := Service{ID: 1, VIP: vip, Proto: ProtoTCP, SNAT: client.Addr()}
	if _, err := d.SetService(svc, []netip.AddrPort{vip}, constantTable(d.opts.TableSize, 0)); err != nil {
		b.Fatal(err)
	}
	p := testPacket{src: client, dst: vip, proto: ProtoTCP, tcpFlags: tcpACK, payload: make([]byte, 64)}
	reply := testPacket{src: vip, dst: client, proto: ProtoTCP, tcpFlags: tcpACK, payload: make([]byte, 64)}
	// The first packet of each direction takes the full path and fills
	// the entries every later one is served from.
	runProg(b, prog, ns, p.build(), 0)
	runProg(b, prog, ns, reply.build(), 0)

	benchmarks := []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
		want  uint32
	}{
		{"harness", emptyProgram(b, h), p.build(), h.verdict(tcActOK)},
		{"pass-through", prog, passThroughFrame(), h.verdict(tcActOK)},
		{"established", prog, p.build(), h.verdict(tcActRedirect)},
		{"reply", prog, reply.build(), h.verdict(tcActRedirect)},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			runs := make([]time.Duration, 0, b.N)
			err := inNetns(ns, func() error {
				for range b.N {
					ret, dur, err := bm.prog.Benchmark(bm.frame, steadyRepeat, nil)
					if err != nil {
						return err
					}
					if ret != bm.want {
						return fmt.Errorf("verdict %d, want %d", ret, bm.want)
					}
					runs = append(runs, dur)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			reportRuns(b, runs)
		})
	}
	// Every packet but the first was translated from conntrack.
	if st := serviceState(b, d, svc.ID); st.Stats.NewFlows != 1 {
		b.Errorf("the fixed-point flow was created %d times, want once", st.Stats.NewFlows)
	}
}

// newBenchDataplane opens a Dataplane whose service 0 balances vip4TCP over
// eight backends in a namespace that forwards to them.
func newBenchDataplane(b *testing.B) (*Dataplane, netns.NsHandle) {
	needBPF(b)
	opts := Options{PinPath: filepath.Join(newBPFFS(b), "weir"), MaxServices: 4, MaxBackends: 16,
		TableSize: DefaultTableSize, MaxFlows: 65536}
	d := openAt(b, opts)
	ns := newNetns(b)
	backends := make([]netip.AddrPort, 8)
	for i := range backends {
		backends[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(11 + i)}), 8080)
	}
	if err := inNetns(ns, func() error { return forwardingNamespace(backends) }); err != nil {
		b.Fatalf("set up namespace: %v", err)
	}
	// 20000 SNAT ports a backend, the compiled-in range of the program
	// before ranges were per service: "new flow" makes more flows than the
	// default range's 4536 ports a backend hold, and the same range keeps
	// the figures comparable with earlier ones.
	svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: PortRange{First: 40000, Last: 59999}}
	if _, err := d.SetService(svc, backends, sequentialTable(opts.TableSize, len(backends))); err != nil {
		b.Fatal(err)
	}
	// Service 2 sends dsrBenchVIP to the same backends by direct server return.
	dsrBackends := make([]netip.AddrPort, len(backends))
	for i, be := range backends {
		dsrBackends[i] = netip.AddrPortFrom(be.Addr(), dsrBenchVIP.Port())
	}
	dsr := Service{ID: 2, VIP: dsrBenchVIP, Proto: ProtoTCP, SNAT: snat4, Forwarding: ForwardingDSRIPIP}
	if _, err := d.SetService(dsr, dsrBackends, sequentialTable(opts.TableSize, len(backends))); err != nil {
		b.Fatal(err)
	}
	// Service 3 does the same with gueBenchVIP in GUE.
	gue := Service{ID: 3, VIP: gueBenchVIP, Proto: ProtoTCP, SNAT: snat4, Forwarding: ForwardingDSRGUE}
	if _, err := d.SetService(gue, dsrBackends, sequentialTable(opts.TableSize, len(backends))); err != nil {
		b.Fatal(err)
	}
	return d, ns
}

// dsrBenchVIP and gueBenchVIP are the VIPs of newBenchDataplane's DSR
// services, in IPIP and in GUE. They share a port, so that the same
// backends serve both.
var (
	dsrBenchVIP = netip.MustParseAddrPort("192.0.2.30:80")
	gueBenchVIP = netip.MustParseAddrPort("192.0.2.31:80")
)

// passThroughFrame is TCP to an address no service uses.
func passThroughFrame() []byte {
	return testPacket{src: client4, dst: netip.MustParseAddrPort("192.0.2.99:80"), proto: ProtoTCP,
		tcpFlags: tcpACK}.build()
}

// fixedPointClient finds a client of vip whose first SNAT port probe is its
// own source port.
func fixedPointClient(vip netip.AddrPort) (netip.AddrPort, bool) {
	for host := 2; host < 255; host++ {
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(host)})
		for port := int(DefaultSNATPorts.First); port <= int(DefaultSNATPorts.Last); port++ {
			c := netip.AddrPortFrom(addr, uint16(port))
			if expectedSNATPort(c, vip, ProtoTCP) == uint16(port) {
				return c, true
			}
		}
	}
	return netip.AddrPort{}, false
}

// emptyProgram loads a program of h's type that passes the packet at once,
// the yardstick for what BPF_PROG_TEST_RUN itself costs.
func emptyProgram(b *testing.B, h hook) *ebpf.Program {
	b.Helper()
	typ := ebpf.SchedCLS
	if h.xdp {
		typ = ebpf.XDP
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "weir_empty",
		Type:         typ,
		License:      "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(h.verdict(tcActOK))), asm.Return()},
	})
	if err != nil {
		b.Fatalf("load empty program: %v", err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// replyFrame is the backend's answer to the flow p opened, addressed to
// the SNAT address and port conntrack holds for it.
func replyFrame(b *testing.B, d *Dataplane, p testPacket) []byte {
	b.Helper()
	var fwd bpf.WeirCtEntry
	if err := d.objs.WeirV1Ct.Lookup(clientFlow(p), &fwd); err != nil {
		b.Fatalf("conntrack entry of %s -> %s: %v", p.src, p.dst, err)
	}
	reply := testPacket{
		src:   netip.AddrPortFrom(addrFrom16(fwd.Nat.Dst, 4), fwd.Nat.Dport),
		dst:   netip.AddrPortFrom(addrFrom16(fwd.Nat.Src, 4), fwd.Nat.Sport),
		proto: p.proto, tcpFlags: tcpACK, payload: make([]byte, 64),
	}
	return reply.build()
}

// forwardingNamespace makes the calling thread's namespace route the
// backends through one end of a veth pair and the client through the other,
// with every neighbour resolved. Test runs arrive on the namespace's
// loopback device, which forwards once forwarding is on.
func forwardingNamespace(backends []netip.AddrPort) error {
	if err := addVeth("weir-d0", "weir-d1"); err != nil {
		return err
	}
	if err := testenv.ConfigureLink("weir-d1", "198.51.100.1/24"); err != nil {
		return err
	}
	if err := testenv.ConfigureLink("weir-d0", "203.0.113.1/24"); err != nil {
		return err
	}
	if err := enableForwarding(); err != nil {
		return err
	}
	if err := addNeighbour("weir-d1", client4.Addr(), net.HardwareAddr{0x02, 0, 0, 0, 2, 1}); err != nil {
		return err
	}
	for i, be := range backends {
		if err := addNeighbour("weir-d0", be.Addr(), net.HardwareAddr{0x02, 0, 0, 0, 1, byte(i)}); err != nil {
			return err
		}
	}
	return nil
}

func constFrame(frame []byte) func(int) []byte { return func(int) []byte { return frame } }

// newFlowFrames varies the client port and the low bytes of the client
// address, giving every iteration a flow of its own (the program does not
// check the checksums it updates).
func newFlowFrames(frame []byte) func(int) []byte {
	buf := append([]byte(nil), frame...)
	return func(i int) []byte {
		binary.BigEndian.PutUint16(buf[14+20:], uint16(1024+i%60000))
		binary.BigEndian.PutUint16(buf[14+14:], uint16(i/60000))
		return buf
	}
}

// benchmarkRuns runs the program n times, each once on a fresh copy of
// frame(i), and returns the kernel's run times. Repeating inside one
// syscall would measure the wrong path: the kernel reuses the packet, which
// the first run already translated.
func benchmarkRuns(prog *ebpf.Program, n int, frame func(int) []byte, want uint32) ([]time.Duration, error) {
	runs := make([]time.Duration, n)
	for i := range n {
		ret, d, err := prog.Benchmark(frame(i), 1, nil)
		if err != nil {
			return nil, err
		}
		if ret != want {
			return nil, fmt.Errorf("run %d: verdict %d, want %d", i, ret, want)
		}
		runs[i] = d
	}
	return runs, nil
}

// reportRuns reports the mean run time as ns/op and the median as p50-ns:
// on a shared virtual machine an interrupt or a stolen time slice inside
// one run adds microseconds to the mean, and the median shows what a
// packet costs without them.
func reportRuns(b *testing.B, runs []time.Duration) {
	var total time.Duration
	for _, d := range runs {
		total += d
	}
	slices.Sort(runs)
	b.ReportMetric(float64(total.Nanoseconds())/float64(len(runs)), "ns/op")
	b.ReportMetric(float64(runs[len(runs)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkSetService measures one table change as the mirror makes it
// after a health decision: a default-size Maglev table over a set that
// alternates between two and three backends, staged and switched.
func BenchmarkSetService(b *testing.B) {
	d, _ := newBenchDataplane(b)
	svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	backends := make([]netip.AddrPort, 3)
	for i := range backends {
		backends[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(11 + i)}), 8080)
	}
	tables := [][]uint32{sequentialTable(d.opts.TableSize, 2), sequentialTable(d.opts.TableSize, 3)}
	for i := 0; b.Loop(); i++ {
		n := 2 + i%2
		if _, err := d.SetService(svc, backends[:n], tables[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
