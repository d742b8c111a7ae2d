package lb

import (
	"context"
	"fmt"
	"strconv"
	"testing"
)

// algorithms lists every built-in algorithm, for table-driven tests and
// benchmarks over all of them.
var algorithms = []struct {
	name string
	new  func() Algorithm
}{
	{"round_robin", func() Algorithm { return &RoundRobin{} }},
	{"random", func() Algorithm { return Random{} }},
	{"least_loaded", func() Algorithm { return LeastLoaded{} }},
	{"fnv", func() Algorithm { return FNV{} }},
	{"ketama", func() Algorithm { return Ketama{} }},
	{"maglev", func() Algorithm { return Maglev{} }},
}

// benchPool returns a LoadBalancer over n backends with mixed weights.
func benchPool(tb testing.TB, algo Algorithm, n int) *LoadBalancer[Algorithm] {
	tb.Helper()
	backends := make([]Backend, n)
	for i := range backends {
		backends[i] = MustBackend(fmt.Sprintf("10.%d.%d.%d:80", i>>16&255, i>>8&255, i&255), 1+i%3)
	}
	d, err := NewStatic(backends...)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := New(algo, Options{Discovery: d})
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.Update(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return l
}

func benchKeys() [][]byte {
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte("/objects/" + strconv.Itoa(i*7919))
	}
	return keys
}

// BenchmarkSelect measures one LoadBalancer.Select, the per-request cost
// of choosing a backend, for every algorithm and pool size.
func BenchmarkSelect(b *testing.B) {
	keys := benchKeys()
	for _, a := range algorithms {
		for _, n := range []int{3, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", a.name, n), func(b *testing.B) {
				l := benchPool(b, a.new(), n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, ok := l.Select(keys[i&1023], 3); !ok {
						b.Fatal("no backend")
					}
					i++
				}
			})
		}
	}
}

// TestSelectAllocationFreeForEveryAlgorithm is the allocation half of
// BenchmarkSelect's promise, checked deterministically.
func TestSelectAllocationFreeForEveryAlgorithm(t *testing.T) {
	keys := benchKeys()
	for _, a := range algorithms {
		for _, n := range []int{3, 100, 1000} {
			t.Run(fmt.Sprintf("%s/%d", a.name, n), func(t *testing.T) {
				l := benchPool(t, a.new(), n)
				i := 0
				allocs := testing.AllocsPerRun(2000, func() {
					l.Select(keys[i&1023], 3)
					i++
				})
				if allocs != 0 {
					t.Fatalf("Select allocated %.2f times per call, want 0", allocs)
				}
			})
		}
	}
}
