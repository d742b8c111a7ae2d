package maps

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/weir-lb/weir/pkg/lb"
)

// Balancer nodes behind ECMP must write the same backends and Maglev table
// into their data planes when they see the same usable backends, whatever
// order discovery listed them in and health checks flapped them in.

// nodeBackend is one backend of a test pool.
type nodeBackend struct {
	addr   string
	weight int
	backup bool
	down   bool // unusable once the flaps are over
}

// nodePool returns n backends of 203.0.113.0/24 (or 2001:db8::/32 when v6),
// weighted by weight(i), every third of them down at the end.
func nodePool(n int, v6 bool, weight func(i int) int) []nodeBackend {
	pool := make([]nodeBackend, n)
	for i := range pool {
		addr := fmt.Sprintf("203.0.113.%d:80", i+1)
		if v6 {
			addr = fmt.Sprintf("[2001:db8::%x]:80", i+1)
		}
		pool[i] = nodeBackend{addr: addr, weight: weight(i), down: i%3 == 2}
	}
	return pool
}

// Weights of the test pools' backends by position.
func equalWeights(int) int   { return 1 }
func mixedWeights(i int) int { return 1 + i*7%5 }

// heavyFirst gives the first backend 200 times the others' weight.
func heavyFirst(i int) int {
	if i == 0 {
		return 200
	}
	return 1
}

// withBackups makes the last two backends of pool backups.
func withBackups(pool []nodeBackend) []nodeBackend {
	for i := range pool {
		pool[i].backup = i >= len(pool)-2
	}
	return pool
}

// lastWriter keeps the last write.
type lastWriter struct {
	last   write
	writes int
}

func (w *lastWriter) Write(backends []netip.AddrPort, table []uint32) (uint32, error) {
	w.writes++
	w.last = write{slices.Clone(backends), slices.Clone(table)}
	return uint32(w.writes), nil
}

// runNode feeds one node's Mirror the pool in its own order (by seed):
// every backend joins, each fails and recovers in turn, then the ones
// down fail for good, each change synced as weir's Run would. It returns
// the last write.
func runNode(t *testing.T, pool []nodeBackend, seed uint64) (write, int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 42))
	order := slices.Clone(pool)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	w := &lastWriter{}
	m := New(w, tableSize, nil)
	ev := func(kind lb.EventKind, b nodeBackend, healthy bool) {
		be := lb.MustBackend(b.addr, b.weight)
		be.Backup = b.backup
		m.Observe(lb.Event{Kind: kind, Backend: be, Healthy: healthy, Enabled: true})
		if err := m.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range order {
		ev(lb.Added, b, true)
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, b := range order {
		ev(lb.HealthChanged, b, false)
		ev(lb.HealthChanged, b, true)
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, b := range order {
		if b.down {
			ev(lb.HealthChanged, b, false)
		}
	}
	return w.last, w.writes
}

func TestMirrorWritesTheSameOnEveryNode(t *testing.T) {
	cases := []struct {
		name string
		pool []nodeBackend
	}{
		{"3 equal", nodePool(3, false, equalWeights)},
		{"5 mixed weights", nodePool(5, false, mixedWeights)},
		{"10 equal across .9 and .10", nodePool(10, false, equalWeights)},
		{"10 mixed weights", nodePool(10, false, mixedWeights)},
		{"12 one heavy", nodePool(12, false, heavyFirst)},
		{"40 mixed weights", nodePool(40, false, mixedWeights)},
		{"10 IPv6", nodePool(10, true, mixedWeights)},
		{"6 with backups", withBackups(nodePool(6, false, mixedWeights))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var usable []string
			for _, b := range tc.pool {
				if !b.down && !b.backup {
					usable = append(usable, netip.MustParseAddrPort(b.addr).String())
				}
			}
			want, _ := runNode(t, tc.pool, 1)
			if got := addrStrings(want.backends); !slices.Equal(got, sortedCopy(usable)) {
				t.Fatalf("node 1 serves %v, want %v", got, usable)
			}
			for seed := uint64(2); seed <= 4; seed++ {
				got, writes := runNode(t, tc.pool, seed)
				if !slices.Equal(got.backends, want.backends) {
					t.Fatalf("node %d (%d writes): backends %v, node 1 has %v", seed, writes, got.backends, want.backends)
				}
				if !slices.Equal(got.table, want.table) {
					j := 0
					for got.table[j] == want.table[j] {
						j++
					}
					t.Fatalf("node %d (%d writes): entry %d is %d, node 1 has %d", seed, writes, j, got.table[j], want.table[j])
				}
			}
		})
	}
}

func addrStrings(aps []netip.AddrPort) []string {
	s := make([]string, len(aps))
	for i, ap := range aps {
		s[i] = ap.String()
	}
	return s
}

// sortedCopy returns addrs in the mirror's order (by address, then port).
func sortedCopy(addrs []string) []string {
	aps := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		aps[i] = netip.MustParseAddrPort(a)
	}
	slices.SortFunc(aps, netip.AddrPort.Compare)
	return addrStrings(aps)
}
