//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/bpffs"
)

// pinnedMaps are the maps the program pins, with the fields BTF names in
// their dumps.
var pinnedMaps = map[string][]string{
	bpf.WeirMapWeirV1Vips:       {"addr", "port", "proto", "ip_version", "service_id"},
	bpf.WeirMapWeirV1Active:     {"generation"},
	bpf.WeirMapWeirV1Svc:        {"vip", "snat", "vip_port", "proto", "ip_version", "generation", "backend_count", "snat_ports", "first", "count", "forwarding"},
	bpf.WeirMapWeirV1Backend:    {"addr", "port", "ip_version", "slot"},
	bpf.WeirMapWeirV1Maglev:     {"backend"},
	bpf.WeirMapWeirV1Live:       {"service_id", "addr", "port", "ip_version", "slot"},
	bpf.WeirMapWeirV1Ct:         ctEntryFields,
	bpf.WeirMapWeirV1Rnat:       ctEntryFields,
	bpf.WeirMapWeirV1Svcstat:    {"packets", "bytes", "new_flows", "drops"},
	bpf.WeirMapWeirV1Bestat:     {"packets", "bytes", "new_flows", "drops"},
	bpf.WeirMapWeirV1ReplyPorts: {"first", "count"},
}

// ctEntryFields are the key and value fields of both conntrack maps.
var ctEntryFields = []string{"src", "dst", "sport", "dport", "proto", "ip_version", "nat", "service_id",
	"generation", "slot", "csum_addrs", "csum_ports", "seen", "tcp", "forwarding", "fwd", "stamp", "ifindex", "max_len", "action", "dmac", "smac"}

func TestReopenReusesPinnedMaps(t *testing.T) {
	needBPF(t)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	svc4 := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: DefaultSNATPorts}
	svc6 := Service{ID: 3, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6, SNATPorts: PortRange{First: 1024, Last: 65535}}

	first, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for _, s := range []struct {
		svc      Service
		backends []netip.AddrPort
	}{{svc4, backends4}, {svc6, backends6[:2]}} {
		if _, err := first.SetService(s.svc, s.backends, sequentialTable(opts.TableSize, len(s.backends))); err != nil {
			t.Fatalf("SetService: %v", err)
		}
	}
	want, err := first.Services()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for name := range pinnedMaps {
		if _, err := os.Stat(filepath.Join(opts.PinPath, name)); err != nil {
			t.Errorf("map %s not pinned after Close: %v", name, err)
		}
	}

	// A new process (here: a new Dataplane) sees the same services.
	second := openAt(t, opts)
	got := services(t, second)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reopened Services()\n got %+v\nwant %+v", got, want)
	}
	if len(got) != 2 || got[0].Service != svc4 || got[1].Service != svc6 ||
		!slices.Equal(got[0].Backends, backends4) || !slices.Equal(got[1].Backends, backends6[:2]) {
		t.Errorf("Services() = %+v, want %v with %v and %v with %v", got, svc4, backends4, svc6, backends6[:2])
	}
	// And carries on from the live generation.
	gen, err := second.SetService(svc4, backends4[:1], constantTable(opts.TableSize, 0))
	if err != nil || gen != 2 {
		t.Errorf("SetService after reopen = %d, %v; want generation 2", gen, err)
	}
}

func TestOpenRejectsMapsOfOtherSizes(t *testing.T) {
	needBPF(t)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	openAt(t, opts)
	other := opts
	other.TableSize = 257
	d, err := Open(other)
	if !errors.Is(err, ErrIncompatibleMaps) {
		if d != nil {
			d.Close()
		}
		t.Fatalf("Open with another TableSize: %v, want ErrIncompatibleMaps", err)
	}
}

func TestOpenMountsBPFFS(t *testing.T) {
	needBPF(t)
	parent := filepath.Join(t.TempDir(), "fs")
	t.Cleanup(func() { unmount(t, parent) }) // runs after the Dataplane's Close
	openAt(t, testOptions(filepath.Join(parent, "weir")))
	if !bpffs.On(parent) {
		t.Errorf("%s is not a bpffs after Open", parent)
	}
}

func TestOpenDefaults(t *testing.T) {
	needBPF(t)
	d := openAt(t, Options{PinPath: filepath.Join(newBPFFS(t), "weir")})
	want := Options{PinPath: d.opts.PinPath, MaxServices: DefaultMaxServices, MaxBackends: DefaultMaxBackends,
		TableSize: DefaultTableSize, MaxFlows: DefaultMaxFlows, FlowCacheTTL: DefaultFlowCacheTTL,
		ClosedFlowTimeout: DefaultClosedFlowTimeout, TCPIdleTimeout: DefaultTCPIdleTimeout,
		UDPIdleTimeout: DefaultUDPIdleTimeout}
	if d.opts != want {
		t.Errorf("options %+v, want %+v", d.opts, want)
	}
	if got := d.objs.WeirV1Maglev.MaxEntries(); got != 2*DefaultMaxServices*DefaultTableSize {
		t.Errorf("maglev map holds %d entries, want %d", got, 2*DefaultMaxServices*DefaultTableSize)
	}
	table := sequentialTable(DefaultTableSize, len(backends4))
	if _, err := d.SetService(Service{ID: 15, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}, backends4, table); err != nil {
		t.Fatalf("SetService with a full-size table: %v", err)
	}
}

func TestSetServiceRejectsBadInput(t *testing.T) {
	d := openTest(t)
	m := d.opts.TableSize
	good := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	tests := []struct {
		name     string
		svc      Service
		backends []netip.AddrPort
		table    []uint32
		want     error
	}{
		{"id out of range", Service{ID: 4, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}, backends4, sequentialTable(m, 3), ErrInvalidService},
		{"protocol", Service{ID: 1, VIP: vip4TCP, Proto: 1, SNAT: snat4}, backends4, sequentialTable(m, 3), ErrInvalidService},
		{"SNAT of another family", Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat6}, backends4, sequentialTable(m, 3), ErrInvalidService},
		{"backend of another family", good, []netip.AddrPort{backends6[0]}, sequentialTable(m, 1), ErrInvalidBackend},
		{"duplicate backend", good, []netip.AddrPort{backends4[0], backends4[0]}, sequentialTable(m, 2), ErrInvalidBackend},
		{"too many backends", good, make9Backends(), sequentialTable(m, 9), ErrInvalidBackend},
		{"short table", good, backends4, sequentialTable(m-1, 3), ErrInvalidTable},
		{"entry beyond backends", good, backends4, sequentialTable(m, 4), ErrInvalidTable},
		{"table without backends", good, nil, sequentialTable(m, 1), ErrInvalidTable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gen, err := d.SetService(tc.svc, tc.backends, tc.table)
			if !errors.Is(err, tc.want) || gen != 0 {
				t.Errorf("SetService = %d, %v; want 0, %v", gen, err, tc.want)
			}
		})
	}
	if st := services(t, d); len(st) != 0 {
		t.Errorf("rejected input left services behind: %+v", st)
	}
}

func make9Backends() []netip.AddrPort {
	out := make([]netip.AddrPort, 9)
	for i := range out {
		out[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}), 80)
	}
	return out
}

func TestVIPOwnership(t *testing.T) {
	f := newFixture(t, tcHook)
	m := f.d.opts.TableSize
	a := Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	b := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	f.setService(a, backends4, sequentialTable(m, 3))
	if _, err := f.d.SetService(b, backends4, sequentialTable(m, 3)); !errors.Is(err, ErrVIPInUse) {
		t.Fatalf("second service on the same VIP: %v, want ErrVIPInUse", err)
	}
	// Service a moves to another port; its old VIP is released for b.
	a.VIP = netip.AddrPortFrom(vip4TCP.Addr(), 8000)
	f.setService(a, backends4, sequentialTable(m, 3))
	f.setService(b, backends4[:1], constantTable(m, 0))
	if n := countEntries(t, f); n != 2 {
		t.Errorf("VIP map holds %d keys, want 2", n)
	}
	be, _ := f.translate(testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
		backends4[:1], constantTable(m, 0), snat4)
	if be != backends4[0] {
		t.Errorf("old VIP reached %s, want service b's %s", be, backends4[0])
	}
}

func countEntries(t *testing.T, f *fixture) int {
	t.Helper()
	var (
		k bpf.WeirVipKey
		v bpf.WeirVipValue
		n int
	)
	it := f.d.objs.WeirV1Vips.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeleteService(t *testing.T) {
	f := newFixture(t, tcHook)
	m := f.d.opts.TableSize
	svc := Service{ID: 2, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}
	f.setService(svc, backends4, sequentialTable(m, 3))
	p := testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("x")}
	f.translate(p, backends4, sequentialTable(m, 3), snat4)

	if err := f.d.DeleteService(svc.ID); err != nil {
		t.Fatalf("DeleteService: %v", err)
	}
	if st := services(t, f.d); len(st) != 0 {
		t.Errorf("Services() after delete = %+v", st)
	}
	in := p.build()
	if ret, out := f.run(in); ret != tcActOK || !slices.Equal(out, in) {
		t.Errorf("packet to a deleted VIP: verdict %d, changed %v; want it passed untouched", ret, !slices.Equal(out, in))
	}
	if live, err := f.d.liveBackends(svc.ID); err != nil || len(live) != 0 {
		t.Errorf("live backends after delete = %v, %v", live, err)
	}
	if err := f.d.DeleteService(svc.ID); !errors.Is(err, ErrNoService) {
		t.Errorf("second DeleteService: %v, want ErrNoService", err)
	}
	if err := f.d.DeleteService(99); !errors.Is(err, ErrInvalidService) {
		t.Errorf("DeleteService(99): %v, want ErrInvalidService", err)
	}

	// Re-created, it continues from its last generation (so that its old
	// conntrack entries cannot pass for current ones) with zero counters.
	if gen := f.setService(svc, backends4, sequentialTable(m, 3)); gen != 2 {
		t.Errorf("generation after re-create = %d, want 2", gen)
	}
	if st := serviceState(t, f.d, svc.ID); st.Stats.Packets != 0 || st.BackendStats[0].Packets != 0 {
		t.Errorf("counters after re-create: %+v / %+v, want zero", st.Stats, st.BackendStats)
	}
}

func TestClosedDataplane(t *testing.T) {
	needBPF(t)
	d := openAt(t, testOptions(filepath.Join(newBPFFS(t), "weir")))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetService(Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}, nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetService after Close: %v, want ErrClosed", err)
	}
	if _, err := d.Services(); !errors.Is(err, ErrClosed) {
		t.Errorf("Services after Close: %v, want ErrClosed", err)
	}
	if err := d.Attach("lo"); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
}

// TestDropReasonsMatchProgram pins the Go names to enum drop_reason.
func TestDropReasonsMatchProgram(t *testing.T) {
	if n := len(bpf.WeirCounters{}.Drops); n != numDropReasons || bpf.WeirDropReasonDROP_REASONS != numDropReasons {
		t.Fatalf("program has %d drop reasons, Go names %d", n, numDropReasons)
	}
	names := dropReasonNames()
	for reason, want := range map[bpf.WeirDropReason]string{
		bpf.WeirDropReasonDROP_TABLE_EMPTY:    DropTableEmpty,
		bpf.WeirDropReasonDROP_NO_BACKEND:     DropNoBackend,
		bpf.WeirDropReasonDROP_SNAT_EXHAUSTED: DropSNATExhausted,
		bpf.WeirDropReasonDROP_REWRITE_FAILED: DropRewriteFailed,
		bpf.WeirDropReasonDROP_DSR_TOO_BIG:    DropDSRTooBig,
	} {
		if names[reason] != want {
			t.Errorf("drop reason %d is named %q, want %q", reason, names[reason], want)
		}
	}
}

// TestXDPBuildSharesPinnedMaps checks that Open loads the XDP build of the
// program and that it works on the very maps the tc build does, except for
// the per-CPU scratch maps, which hold nothing between packets.
func TestXDPBuildSharesPinnedMaps(t *testing.T) {
	d := openTest(t)
	xdp, err := d.xdpProgram()
	if err != nil {
		t.Fatalf("XDP build not loaded: %v", err)
	}
	names := func(p *ebpf.Program) map[string]ebpf.MapID {
		t.Helper()
		info, err := p.Info()
		if err != nil {
			t.Fatalf("program info: %v", err)
		}
		ids, ok := info.MapIDs()
		if !ok {
			t.Skip("kernel does not report a program's maps")
		}
		out := make(map[string]ebpf.MapID, len(ids))
		for _, id := range ids {
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				t.Fatalf("open map %d: %v", id, err)
			}
			mi, err := m.Info()
			m.Close()
			if err != nil {
				t.Fatalf("map %d info: %v", id, err)
			}
			out[mi.Name] = id
		}
		return out
	}
	tc, x := names(d.objs.WeirIngress), names(xdp)
	// The kernel keeps 15 bytes of a map's name.
	short := func(name string) string { return name[:min(len(name), 15)] }
	for name := range pinnedMaps {
		name := short(name)
		if tc[name] == 0 || tc[name] != x[name] {
			t.Errorf("map %s: tc build uses id %d, XDP build %d; want the same pinned map", name, tc[name], x[name])
		}
	}
	for _, name := range []string{"weir_scratch", "weir_icmp_scratch", "weir_dsr_icmp_buf"} {
		name := short(name)
		if x[name] == 0 || x[name] == tc[name] {
			t.Errorf("scratch map %s: tc build uses id %d, XDP build %d; want one each", name, tc[name], x[name])
		}
	}
}
