package lb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Balancer nodes behind ECMP must compute the same Maglev table from the
// same backends, whatever order discovery (a static list, a DNS answer's
// rotation) hands them over in and whatever order health checks flapped
// them in, so that a flow moved from one node to another lands on the
// same backend. These tests build the table on independent "nodes" from
// shuffled lists and compare it by address.

// maglevNodeCases are pools of several sizes and weights, with addresses
// whose string order differs from their numeric order (port 9 and 10,
// .9 and .10), IPv6 beside IPv4, and names beside addresses.
var maglevNodeCases = []struct {
	name    string
	addrs   []string
	weights []int // nil: all 1
}{
	{"one", []string{"203.0.113.1:80"}, nil},
	{"two", []string{"203.0.113.1:80", "203.0.113.2:80"}, nil},
	{"three ports across a digit", []string{"203.0.113.1:9", "203.0.113.1:10", "203.0.113.1:100"}, nil},
	{"five", maglevNodeAddrs(5), nil},
	{"ten across .9 and .10", maglevNodeAddrs(10), nil},
	{"ten weighted", maglevNodeAddrs(10), []int{1, 2, 3, 4, 5, 1, 2, 3, 4, 5}},
	{"hundred", maglevNodeAddrs(100), nil},
	{"hundred weighted", maglevNodeAddrs(100), maglevNodeWeights(100)},
	{"equal weights but one", maglevNodeAddrs(7), []int{100, 100, 100, 1, 100, 100, 100}},
	{"IPv6 and IPv4", []string{"[2001:db8::10]:80", "[2001:db8::9]:80", "192.0.2.9:80", "192.0.2.10:80", "[2001:db8::a]:8080"}, nil},
	{"names, sockets and addresses", []string{"b.example:80", "a.example:80", "unix:/run/b.sock", "198.51.100.2:80", "[2001:db8::2]:80"}, []int{3, 1, 2, 2, 5}},
}

// maglevNodeAddrs returns n IPv4 addresses .1 to .n of 203.0.113.0/24.
func maglevNodeAddrs(n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("203.0.113.%d:8080", i+1)
	}
	return addrs
}

// maglevNodeWeights returns n weights from 1 to 7.
func maglevNodeWeights(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = 1 + i*5%7
	}
	return w
}

// maglevNodeBackends returns the case's backends shuffled by seed (0: as
// listed).
func maglevNodeBackends(t *testing.T, addrs []string, weights []int, seed uint64) []Backend {
	t.Helper()
	backends := make([]Backend, len(addrs))
	for i, a := range addrs {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		b, err := NewBackend(a, w)
		if err != nil {
			t.Fatal(err)
		}
		backends[i] = b
	}
	if seed != 0 {
		r := rand.New(rand.NewPCG(seed, seed))
		r.Shuffle(len(backends), func(i, j int) { backends[i], backends[j] = backends[j], backends[i] })
	}
	return backends
}

// maglevNodeSeeds are the list orders of the three nodes: as listed and
// two shuffles (reversed is the fourth).
var maglevNodeSeeds = []uint64{0, 1, 2}

func TestMaglevTableIsTheSameOnEveryNode(t *testing.T) {
	for _, tc := range maglevNodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			orders := make([][]Backend, 0, len(maglevNodeSeeds)+1)
			for _, seed := range maglevNodeSeeds {
				orders = append(orders, maglevNodeBackends(t, tc.addrs, tc.weights, seed))
			}
			reversed := slices.Clone(orders[0])
			slices.Reverse(reversed)
			orders = append(orders, reversed)
			for node, backends := range orders {
				table, err := MaglevTable(backends, DefaultMaglevTableSize)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]string, len(table))
				for j, i := range table {
					got[j] = backends[i].Addr
				}
				if node == 0 {
					want = got
					continue
				}
				if j := firstDifference(got, want); j >= 0 {
					t.Fatalf("node %d (order %v): entry %d is %s, node 0 has %s", node, maglevNodeOrder(backends), j, got[j], want[j])
				}
			}
		})
	}
}

// TestMaglevCandidatesAreTheSameOnEveryNode compares whole selections, the
// fallback after a key's entry included: every candidate a key is offered,
// in order, by address.
func TestMaglevCandidatesAreTheSameOnEveryNode(t *testing.T) {
	keys := hashTestKeys(2000, 24)
	for _, tc := range maglevNodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var want [][]string
			for node, seed := range maglevNodeSeeds {
				backends := maglevNodeBackends(t, tc.addrs, tc.weights, seed)
				s := hashTestBuild(t, Maglev{TableSize: 1009}, backends)
				for k, key := range keys {
					var got []string
					for c, ok := s.Start(key), true; ok; {
						var i int
						if i, c, ok = s.Next(c); ok {
							got = append(got, backends[i].Addr)
						}
					}
					if node == 0 {
						want = append(want, got)
						continue
					}
					if len(got) != len(want[k]) {
						t.Fatalf("node %d, key %x: %d candidates, node 0 has %d", node, key, len(got), len(want[k]))
					}
					if j := firstDifference(got, want[k]); j >= 0 {
						t.Fatalf("node %d, key %x: candidate %d is %s, node 0 has %s", node, key, j, got[j], want[k][j])
					}
				}
			}
		})
	}
}

// TestMaglevSelectionIsTheSameOnEveryNodeAfterFlaps runs whole
// LoadBalancers: each discovers the backends in its own order and sees
// them fail and recover in its own order, ending with the same ones down.
// Every key must then select the same backend on every node.
func TestMaglevSelectionIsTheSameOnEveryNodeAfterFlaps(t *testing.T) {
	keys := hashTestKeys(5000, 25)
	for _, tc := range maglevNodeCases {
		if len(tc.addrs) < 3 {
			continue // too few to leave one down and one up after the flaps
		}
		t.Run(tc.name, func(t *testing.T) {
			// The same third of the backends ends down on every node.
			down := map[string]bool{}
			for i, a := range tc.addrs {
				if i%3 == 1 {
					down[normalizedTestAddr(t, a)] = true
				}
			}
			var want []string
			for node, seed := range maglevNodeSeeds {
				got := maglevNodeSelections(t, maglevNodeBackends(t, tc.addrs, tc.weights, seed), down, seed, keys)
				if node == 0 {
					want = got
					continue
				}
				if k := firstDifference(got, want); k >= 0 {
					t.Fatalf("node %d: key %x selects %s, node 0 selects %s", node, keys[k], got[k], want[k])
				}
			}
		})
	}
}

// maglevNodeSelections builds one node: a LoadBalancer discovering
// backends in their order, whose health check fails every backend once in
// an order of its own (by seed), then every one in down; it returns the
// address each key selects.
func maglevNodeSelections(t *testing.T, backends []Backend, down map[string]bool, seed uint64, keys [][]byte) []string {
	t.Helper()
	failing := map[string]bool{}
	check := checkFunc(func(_ context.Context, b *Backend) error {
		if failing[b.Addr] {
			return fmt.Errorf("%s is down", b.Addr)
		}
		return nil
	})
	static, err := NewStatic(backends...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Maglev{}, Options{Discovery: static, HealthCheck: check})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Update(ctx); err != nil {
		t.Fatal(err)
	}
	flaps := slices.Clone(backends)
	rand.New(rand.NewPCG(seed, 99)).Shuffle(len(flaps), func(i, j int) { flaps[i], flaps[j] = flaps[j], flaps[i] })
	for _, b := range flaps {
		failing[b.Addr] = true
		l.CheckHealth(ctx)
		failing[b.Addr] = false
	}
	for _, b := range flaps {
		failing[b.Addr] = down[b.Addr]
		l.CheckHealth(ctx)
	}
	got := make([]string, len(keys))
	for k, key := range keys {
		b, ok := l.Select(key, len(backends))
		if !ok {
			t.Fatalf("key %x: no backend selected", key)
		}
		if down[b.Addr] {
			t.Fatalf("key %x: selected %s, which is down", key, b.Addr)
		}
		got[k] = b.Addr
	}
	return got
}

// normalizedTestAddr is ParseAddr for addresses known to be valid.
func normalizedTestAddr(t *testing.T, addr string) string {
	t.Helper()
	norm, err := ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return norm
}

// firstDifference returns the first index at which a and b differ, -1
// when they are equal (they have the same length).
func firstDifference(a, b []string) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// maglevNodeOrder lists the backends' addresses, for failure messages.
func maglevNodeOrder(backends []Backend) []string {
	addrs := make([]string, len(backends))
	for i := range backends {
		addrs[i] = backends[i].Addr
	}
	return addrs
}
