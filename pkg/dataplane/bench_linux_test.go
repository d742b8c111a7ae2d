//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// BenchmarkProgram measures the program per packet with Program.Benchmark
// (BPF_PROG_TEST_RUN), including the forwarding path: the namespace routes
// the backends and knows their neighbours, so translated packets end in
// bpf_fib_lookup and bpf_redirect. ns/op is the kernel's own time for one
// run (it includes two clock reads), not the syscall around it.
func BenchmarkProgram(b *testing.B) {
	needBPF(b)
	opts := Options{PinPath: filepath.Join(newBPFFS(b), "weir"), MaxServices: 4, MaxBackends: 16,
		TableSize: DefaultTableSize, MaxFlows: 65536}
	d := openAt(b, opts)
	f := &fixture{d: d, ns: newNetns(b)}
	backends := make([]netip.AddrPort, 8)
	for i := range backends {
		backends[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(11 + i)}), 8080)
	}
	if err := inNetns(f.ns, func() error { return forwardingNamespace(backends) }); err != nil {
		b.Fatalf("set up namespace: %v", err)
	}
	svc := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	if _, err := d.SetService(svc, backends, sequentialTable(opts.TableSize, len(backends))); err != nil {
		b.Fatal(err)
	}
	syn := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN, payload: make([]byte, 64)}
	established := syn
	established.tcpFlags = tcpACK
	be := backends[expectedBackend(sequentialTable(opts.TableSize, len(backends)), syn.src, syn.dst, syn.proto)]
	reply := testPacket{src: be, dst: netip.AddrPortFrom(snat4, expectedSNATPort(syn.src, syn.dst, syn.proto)),
		proto: ProtoTCP, tcpFlags: tcpACK, payload: make([]byte, 64)}
	other := testPacket{src: client4, dst: netip.MustParseAddrPort("192.0.2.99:80"), proto: ProtoTCP, tcpFlags: tcpACK}

	arp := append(append(append([]byte{}, macDst[:]...), macSrc[:]...), 0x08, 0x06)
	arp = append(arp, make([]byte, 28)...)

	benchmarks := []struct {
		name  string
		frame func(i int) []byte
		want  uint32
	}{
		// What one test run costs around a program that returns at once.
		{"harness (ARP)", constFrame(arp), tcActOK},
		{"pass-through", constFrame(other.build()), tcActOK},
		{"established", constFrame(established.build()), tcActRedirect},
		{"new flow", newFlowFrames(syn.build()), tcActRedirect},
		{"reply", constFrame(reply.build()), tcActRedirect},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			// The established and reply paths need the flow in conntrack.
			runProg(b, d.objs.WeirIngress, f.ns, syn.build(), 0)
			var total time.Duration
			err := inNetns(f.ns, func() error {
				var err error
				total, err = benchmarkRuns(d.objs.WeirIngress, b.N, bm.frame, bm.want)
				return err
			})
			if err != nil {
				st, _ := d.Services()
				b.Fatalf("%v; counters %+v", err, st[0].Stats)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
		})
	}
}

// forwardingNamespace makes the calling thread's namespace route the
// backends through one end of a veth pair and the client through the other,
// with every neighbour resolved. Test runs arrive on the namespace's
// loopback device, which forwards once forwarding is on.
func forwardingNamespace(backends []netip.AddrPort) error {
	if err := addVeth("weir-d0", "weir-d1"); err != nil {
		return err
	}
	if err := configureLink("weir-d1", "198.51.100.1/24"); err != nil {
		return err
	}
	if err := configureLink("weir-d0", "203.0.113.1/24"); err != nil {
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
// frame(i), and returns the kernel's total run time. Repeating inside one
// syscall would measure the wrong path: the kernel reuses the packet, which
// the first run already translated.
func benchmarkRuns(prog *ebpf.Program, n int, frame func(int) []byte, want uint32) (time.Duration, error) {
	var total time.Duration
	for i := range n {
		ret, d, err := prog.Benchmark(frame(i), 1, nil)
		if err != nil {
			return 0, err
		}
		if ret != want {
			return 0, fmt.Errorf("run %d: verdict %d, want %d", i, ret, want)
		}
		total += d
	}
	return total, nil
}
