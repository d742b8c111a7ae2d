//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/maps"
)

// Balancer nodes behind ECMP each compute the service's Maglev table; a
// flow that ECMP moves from one node to another keeps its backend only if
// every node's table sends it to the same one. These tests run nodes that
// learn the same backends in different orders, through pkg/maps as weir
// does, and compare what their data planes hold and do.

// nodeBackend is a backend of a simulated pool and whether it is usable
// once a node has seen every change.
type nodeBackend struct {
	ap     netip.AddrPort
	weight int
	down   bool
}

// nodePool returns n backends of 203.0.113.0/24 on port, with weights
// from weight (nil: all 1), every third from the second down.
func nodePool(n int, port uint16, weight func(i int) int) []nodeBackend {
	pool := make([]nodeBackend, n)
	for i := range pool {
		w := 1
		if weight != nil {
			w = weight(i)
		}
		pool[i] = nodeBackend{ap: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), port), weight: w}
	}
	return pool
}

// simNode is one balancer node's control plane: a pkg/maps Mirror over a
// Writer (a Dataplane's SetService, or a recorder for the simulation).
type simNode struct {
	t *testing.T
	m *maps.Mirror
	r *rand.Rand
}

func newSimNode(t *testing.T, w maps.Writer, size uint32, seed uint64) *simNode {
	return &simNode{t: t, m: maps.New(w, size, nil), r: rand.New(rand.NewPCG(seed, 7))}
}

// observe hands the mirror one event and, when sync, publishes at once.
func (n *simNode) observe(kind lb.EventKind, b nodeBackend, healthy, sync bool) {
	n.t.Helper()
	n.m.Observe(lb.Event{Kind: kind, Backend: lb.MustBackend(b.ap.String(), b.weight), Healthy: healthy, Enabled: true})
	if sync {
		n.sync()
	}
}

func (n *simNode) sync() {
	n.t.Helper()
	if err := n.m.Sync(); err != nil {
		n.t.Fatalf("publish: %v", err)
	}
}

// shuffled returns pool in this node's own order.
func (n *simNode) shuffled(pool []nodeBackend) []nodeBackend {
	out := slices.Clone(pool)
	n.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// learn feeds the node pool as discovery and health checks would, in the
// node's own order: every backend joins, each fails and recovers in turn,
// then those marked down fail for good. perEvent publishes after every
// event, otherwise after each phase, so nodes also differ in how many
// tables they publish on the way.
func (n *simNode) learn(pool []nodeBackend, perEvent bool) {
	n.t.Helper()
	for _, b := range n.shuffled(pool) {
		n.observe(lb.Added, b, true, perEvent)
	}
	n.sync()
	for _, b := range n.shuffled(pool) {
		n.observe(lb.HealthChanged, b, false, perEvent)
		n.observe(lb.HealthChanged, b, true, perEvent)
	}
	n.sync()
	for _, b := range n.shuffled(pool) {
		if b.down {
			n.observe(lb.HealthChanged, b, false, perEvent)
		}
	}
	n.sync()
}

// liveTable is a service's live generation as read from a node's pinned
// maps: its backends (slots aside: they number counters, which keep
// their slot across this node's own history) and its Maglev entries.
type liveTable struct {
	generation uint32
	backends   []netip.AddrPort
	slots      []uint32
	entries    [][]byte // raw weir_v1_maglev values, entry j at j
}

// readLiveTable reads service id's live backends and Maglev table from the
// maps pinned under pin, with cilium/ebpf, as another process would.
func readLiveTable(t *testing.T, pin string, id uint32, opts Options) liveTable {
	t.Helper()
	open := func(name string) *ebpf.Map {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin, name), nil)
		if err != nil {
			t.Fatalf("open pinned %s: %v", name, err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	var lt liveTable
	var active bpf.WeirActiveGeneration
	if err := open("weir_v1_active").Lookup(id, &active); err != nil {
		t.Fatalf("read generation of service %d: %v", id, err)
	}
	lt.generation = active.Generation
	half := halfIndex(id, active.Generation)
	var svc bpf.WeirService
	if err := open("weir_v1_svc").Lookup(half, &svc); err != nil {
		t.Fatalf("read half %d: %v", half, err)
	}
	backends := open("weir_v1_backend")
	for i := range svc.BackendCount {
		var be bpf.WeirBackend
		if err := backends.Lookup(half*opts.MaxBackends+i, &be); err != nil {
			t.Fatalf("read backend %d of half %d: %v", i, half, err)
		}
		lt.backends = append(lt.backends, netip.AddrPortFrom(addrFrom16(be.Addr, be.IpVersion), be.Port))
		lt.slots = append(lt.slots, be.Slot)
	}
	table := open("weir_v1_maglev")
	lt.entries = make([][]byte, opts.TableSize)
	for j := range opts.TableSize {
		v, err := table.LookupBytes(half*opts.TableSize + j)
		if err != nil || v == nil {
			t.Fatalf("read entry %d of half %d: %v", j, half, err)
		}
		lt.entries[j] = v
	}
	return lt
}

// index is the backend index entry j holds (struct maglev_entry: one
// host-endian __u32).
func (lt liveTable) index(t *testing.T, j int) uint32 {
	t.Helper()
	if len(lt.entries[j]) != 4 {
		t.Fatalf("entry %d is %d bytes, want 4", j, len(lt.entries[j]))
	}
	return binary.NativeEndian.Uint32(lt.entries[j])
}

func TestNodesHoldTheSameMaglevTable(t *testing.T) {
	needBPF(t)
	pool := nodePool(10, vip4TCP.Port(), func(i int) int { return 1 + i%4 })
	for i := range pool {
		pool[i].down = i%3 == 1
	}
	svc := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	opts := Options{MaxServices: 4, MaxBackends: 16, TableSize: lb.DefaultMaglevTableSize, MaxFlows: 4096}

	// Two nodes, each with its own bpffs, learning the pool in its own
	// order and publishing a different number of generations.
	type node struct {
		d   *Dataplane
		pin string
	}
	nodes := make([]node, 2)
	for i := range nodes {
		o := opts
		o.PinPath = filepath.Join(newBPFFS(t), "weir")
		d := openAt(t, o)
		nodes[i] = node{d: d, pin: o.PinPath}
		w := maps.WriterFunc(func(backends []netip.AddrPort, table []uint32) (uint32, error) {
			return d.SetService(svc, backends, table)
		})
		newSimNode(t, w, opts.TableSize, uint64(i+1)).learn(pool, i == 0)
	}
	a := readLiveTable(t, nodes[0].pin, svc.ID, opts)
	b := readLiveTable(t, nodes[1].pin, svc.ID, opts)
	if a.generation&1 == b.generation&1 {
		// Publish the same table again on one node, so that the nodes
		// also read their tables from different halves of the map.
		if _, err := nodes[1].d.SetService(svc, b.backends, tableOf(t, b)); err != nil {
			t.Fatal(err)
		}
		b = readLiveTable(t, nodes[1].pin, svc.ID, opts)
	}
	t.Logf("node 0: generation %d, slots %v; node 1: generation %d, slots %v", a.generation, a.slots, b.generation, b.slots)

	// Both hold the table of the usable set, entry for entry, byte for byte.
	var usable []netip.AddrPort
	for _, p := range pool {
		if !p.down {
			usable = append(usable, p.ap)
		}
	}
	slices.SortFunc(usable, netip.AddrPort.Compare)
	for _, lt := range []liveTable{a, b} {
		if !slices.Equal(lt.backends, usable) {
			t.Fatalf("generation %d serves %v, want %v", lt.generation, lt.backends, usable)
		}
	}
	want := expectedTable(t, pool, opts.TableSize)
	for j := range a.entries {
		if !bytes.Equal(a.entries[j], b.entries[j]) {
			t.Fatalf("entry %d: node 0 holds %x, node 1 holds %x", j, a.entries[j], b.entries[j])
		}
		if got := a.index(t, j); got != want[j] {
			t.Fatalf("entry %d: backend %d, pkg/lb's table has %d", j, got, want[j])
		}
	}

	// The same packets pick the same backend on both nodes, and the one
	// the table names: the program's translation comes out byte for byte
	// the same. (The SNAT port is the first one probed unless an earlier
	// flow to the same backend holds it; both nodes saw the same flows.)
	forHooks(t, func(t *testing.T, h hook) {
		ns := newNetns(t)
		r := rand.New(rand.NewPCG(3, uint64(len(h.name))))
		seen := map[netip.AddrPort]int{}
		for range 200 {
			client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(254) + 1)}), uint16(1024+r.IntN(64511)))
			p := testPacket{src: client, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
			be := usable[expectedBackend(want, client, vip4TCP, ProtoTCP)]
			var outs [][]byte
			for i, n := range nodes {
				ret, out := runProg(t, h.program(t, n.d), ns, p.build(), 0)
				what := fmt.Sprintf("node %d, flow from %s", i, client)
				if ret != h.verdict(tcActOK) {
					t.Fatalf("%s: verdict %d, want %d", what, ret, h.verdict(tcActOK))
				}
				if err := checkFrame(out); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				pf, err := parseFrame(out)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if pf.dst != be || pf.src.Addr() != snat4 {
					t.Fatalf("%s: sent from %s to %s, want from %s to %s", what, pf.src, pf.dst, snat4, be)
				}
				outs = append(outs, out)
			}
			if !sameFrame(outs[0], outs[1]) {
				t.Fatalf("%s: node 0 sent\n%s\nnode 1 sent\n%s", client, hex.EncodeToString(outs[0]), hex.EncodeToString(outs[1]))
			}
			seen[be]++
		}
		if len(seen) != len(usable) {
			t.Errorf("200 flows reached %d of %d backends: %v", len(seen), len(usable), seen)
		}
	})
}

// tableOf returns lt's entries as backend indexes.
func tableOf(t *testing.T, lt liveTable) []uint32 {
	t.Helper()
	table := make([]uint32, len(lt.entries))
	for j := range table {
		table[j] = lt.index(t, j)
	}
	return table
}

// expectedTable is pkg/lb's Maglev table over pool's usable backends.
func expectedTable(t *testing.T, pool []nodeBackend, size uint32) []uint32 {
	t.Helper()
	var bs []lb.Backend
	for _, p := range pool {
		if !p.down {
			bs = append(bs, lb.MustBackend(p.ap.String(), p.weight))
		}
	}
	table, err := lb.MaglevTable(bs, size)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// lastWrite is a maps.Writer that keeps the last table published.
type lastWrite struct {
	backends []netip.AddrPort
	table    []uint32
	n        uint32
}

func (w *lastWrite) Write(backends []netip.AddrPort, table []uint32) (uint32, error) {
	w.backends, w.table = slices.Clone(backends), slices.Clone(table)
	w.n++
	return w.n, nil
}

// simFlows returns the table entry each of n pseudo-random TCP flows to
// vip hashes to, as the program hashes them (flow_hash, seed "weir"),
// the same for the same seed.
func simFlows(n int, vip netip.AddrPort, size uint32, seed uint64) []uint32 {
	r := rand.New(rand.NewPCG(seed, 0xf10e))
	entries := make([]uint32, n)
	for i := range entries {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], r.Uint32())
		client := netip.AddrPortFrom(netip.AddrFrom4(a), uint16(1024+r.IntN(64512)))
		entries[i] = murmur3(flowBytes(client, vip, ProtoTCP), seedFlow) % size
	}
	return entries
}

// assign returns the backend each flow goes to under w's table.
func assign(w *lastWrite, flows []uint32) []netip.AddrPort {
	out := make([]netip.AddrPort, len(flows))
	for i, e := range flows {
		out[i] = w.backends[w.table[e]]
	}
	return out
}

// TestMaglevRemapOnEveryNode simulates 100,000 flows through three nodes'
// tables, each node learning the pool in its own order, and changes one
// backend: every node must move the same flows, to the same backends, and
// no more than 1/N + 1% of them.
func TestMaglevRemapOnEveryNode(t *testing.T) {
	const flowCount = 100000
	size := uint32(lb.DefaultMaglevTableSize)
	flows := simFlows(flowCount, vip4TCP, size, 24)
	for _, n := range []int{3, 5, 10} {
		for _, change := range []string{"remove one", "add one"} {
			t.Run(fmt.Sprintf("%d backends/%s", n, change), func(t *testing.T) {
				pool := nodePool(n+1, 8080, nil)
				before, spare := pool[:n], pool[n]
				gone := pool[n/2]
				var want []netip.AddrPort // node 0's flows after the change
				var wantBefore []netip.AddrPort
				for node := range 3 {
					w := &lastWrite{}
					sn := newSimNode(t, w, size, uint64(10*n+node))
					sn.learn(before, node == 0)
					was := assign(w, flows)
					switch {
					case change == "add one":
						sn.observe(lb.Added, spare, true, true)
					case node == 1: // a failed health check takes it out as surely
						sn.observe(lb.HealthChanged, gone, false, true)
					default:
						sn.observe(lb.Removed, gone, false, true)
					}
					now := assign(w, flows)
					if node == 0 {
						wantBefore, want = was, now
						continue
					}
					for i := range flows {
						if was[i] != wantBefore[i] || now[i] != want[i] {
							t.Fatalf("node %d: flow %d goes to %s, then %s; node 0 sends it to %s, then %s",
								node, i, was[i], now[i], wantBefore[i], want[i])
						}
					}
				}
				moved, forced := 0, 0
				for i := range flows {
					if wantBefore[i] != want[i] {
						moved++
					}
					if wantBefore[i] == gone.ap && change == "remove one" || want[i] == spare.ap && change == "add one" {
						forced++ // the flows that had to move
					}
				}
				frac, bound := float64(moved)/flowCount, 1/float64(n)+0.01
				t.Logf("N=%d, %s: %d of %d flows moved (%.4f; %d had to: %.4f), bound %.4f, identical on 3 nodes",
					n, change, moved, flowCount, frac, forced, float64(forced)/flowCount, bound)
				if frac > bound {
					t.Errorf("%d of %d flows moved (%.4f), want at most 1/N + 1%% = %.4f", moved, flowCount, frac, bound)
				}
			})
		}
	}
}
