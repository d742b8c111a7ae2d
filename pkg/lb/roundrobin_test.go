package lb

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// letters spells picks of the first backends as a, b, c…, the way the
// nginx sequences are usually written.
func letters(picks []int) string {
	var sb strings.Builder
	for _, idx := range picks {
		sb.WriteByte(byte('a' + idx))
	}
	return sb.String()
}

// roundRobinModes builds a RoundRobin in each selector mode: the default,
// which tabulates short periods, and one whose table limit of one entry
// forces every list with a longer period through the live state.
var roundRobinModes = []struct {
	name string
	make func() *RoundRobin
}{
	{"table", func() *RoundRobin { return &RoundRobin{} }},
	{"live", func() *RoundRobin { return &RoundRobin{tableLimit: 1} }},
}

// TestRoundRobinSmoothSequence checks the exact nginx sequences over two
// periods. Besides nginx's documented 5,1,1 example, 3,2,1 works out by
// hand (current weights after adding, then the pick):
//
//	3,2,1 → a; 0,4,2 → b; 3,0,3 → a (tie, earlier); 0,2,4 → c;
//	3,4,-1 → b; 6,0,0 → a; back to 0,0,0.
func TestRoundRobinSmoothSequence(t *testing.T) {
	cases := []struct {
		weights []int
		period  string
	}{
		{[]int{5, 1, 1}, "aabacaa"},
		{[]int{3, 2, 1}, "abacba"},
		{[]int{1, 1, 1}, "abc"},
		{[]int{4, 2}, "aba"}, // the gcd shortens the period to that of 2,1
		{[]int{1, 5}, "bbabbb"},
	}
	for _, mode := range roundRobinModes {
		for _, tc := range cases {
			t.Run(mode.name+"/"+letters(tc.weights), func(t *testing.T) {
				sel := buildSelector(t, mode.make(), selTestBackends(tc.weights...))
				want := strings.Repeat(tc.period, 2)
				if got := letters(firstPicks(t, sel, len(want))); got != want {
					t.Fatalf("weights %v: sequence %s, want %s", tc.weights, got, want)
				}
			})
		}
	}
}

func TestRoundRobinShares(t *testing.T) {
	for _, mode := range roundRobinModes {
		for _, tc := range shareWeightSets {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				sel := buildSelector(t, mode.make(), selTestBackends(tc.weights...))
				checkShares(t, firstPicks(t, sel, sharePicks), tc.weights)
			})
		}
	}
}

// TestRoundRobinModeChoice checks which lists get a table: a long period of
// large coprime weights must fall back to the live state by default.
func TestRoundRobinModeChoice(t *testing.T) {
	cases := []struct {
		name      string
		weights   []int
		wantTable bool
	}{
		{"short period", []int{5, 1, 1}, true},
		{"100 mixed", mixedWeights(100), true},
		{"large equal weights", []int{MaxWeight, MaxWeight, MaxWeight}, true},
		{"4096 equal", make4096Ones(), true},
		{"4097 equal", append(make4096Ones(), 1), false},
		{"period over 1<<16", []int{MaxWeight, MaxWeight - 1, MaxWeight - 2, MaxWeight - 3, MaxWeight - 4, MaxWeight - 5, MaxWeight - 6}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel := buildSelector(t, &RoundRobin{}, selTestBackends(tc.weights...))
			if _, isTable := sel.(*rrTableSelector); isTable != tc.wantTable {
				t.Fatalf("weights %v (period %d): got %T, want table %v", tc.weights, smoothPeriod(selTestBackends(tc.weights...)), sel, tc.wantTable)
			}
		})
	}
}

func make4096Ones() []int { return slices.Repeat([]int{1}, 4096) }

// TestRoundRobinLiveMatchesTable checks that the live state and the table
// give the same sequence over three periods.
func TestRoundRobinLiveMatchesTable(t *testing.T) {
	sets := append([]selWeightSet{
		{"7,3,2,2", []int{7, 3, 2, 2}},
		{"ties 2,2,3,3", []int{2, 2, 3, 3}},
	}, shareWeightSets...)
	for _, tc := range sets {
		t.Run(tc.name, func(t *testing.T) {
			bs := selTestBackends(tc.weights...)
			table := buildSelector(t, &RoundRobin{}, bs)
			live := buildSelector(t, &RoundRobin{tableLimit: 1}, bs)
			if _, ok := table.(*rrTableSelector); !ok {
				t.Fatalf("default build is %T, want the table", table)
			}
			if _, ok := live.(*rrLiveSelector); !ok && smoothPeriod(bs) > 1 {
				t.Fatalf("build with table limit 1 is %T, want the live state", live)
			}
			count := 3 * smoothPeriod(bs)
			if got, want := firstPicks(t, live, count), firstPicks(t, table, count); !slices.Equal(got, want) {
				t.Fatalf("live sequence differs from the table's:\nlive  %v\ntable %v", got, want)
			}
		})
	}
}

// TestRoundRobinCursorSurvivesRebuild checks that a rebuild continues the
// rotation instead of restarting it.
func TestRoundRobinCursorSurvivesRebuild(t *testing.T) {
	for _, mode := range roundRobinModes {
		t.Run(mode.name, func(t *testing.T) {
			bs := selTestBackends(5, 1, 1)
			rr := mode.make()
			before := firstPicks(t, buildSelector(t, rr, bs), 3)
			// A fresh slice with equal contents, as a discovery would return.
			after := firstPicks(t, buildSelector(t, rr, selTestBackends(5, 1, 1)), 11)
			if got, want := letters(append(before, after...)), strings.Repeat("aabacaa", 2); got != want {
				t.Fatalf("sequence across the rebuild %s, want %s", got, want)
			}
		})
	}
	t.Run("table, changed list", func(t *testing.T) {
		rr := &RoundRobin{}
		firstPicks(t, buildSelector(t, rr, selTestBackends(5, 1, 1)), 3)
		// Three picks made, so the position in the new period of three is
		// 3 mod 3: its beginning.
		sel := buildSelector(t, rr, selTestBackends(1, 1, 1))
		if got := letters(firstPicks(t, sel, 4)); got != "abca" {
			t.Fatalf("sequence after the change %s, want abca", got)
		}
		sel = buildSelector(t, rr, selTestBackends(1, 1, 1))
		if got := letters(firstPicks(t, sel, 1)); got != "b" {
			t.Fatalf("pick after the seventh %s, want b (position 7 mod 3)", got)
		}
	})
	t.Run("live, changed list", func(t *testing.T) {
		rr := &RoundRobin{tableLimit: 1}
		firstPicks(t, buildSelector(t, rr, selTestBackends(5, 1, 1)), 3)
		sel := buildSelector(t, rr, selTestBackends(5, 1, 2))
		// A different list starts a fresh state. By hand, 5,1,2 gives
		// 5,1,2 → a; 2,2,4 → c; 7,3,-2 → a; 4,4,0 → a (tie, earlier);
		// 1,5,2 → b; 6,-2,4 → a; 3,-1,6 → c; 8,0,0 → a.
		if got := letters(firstPicks(t, sel, 8)); got != "acaabaca" {
			t.Fatalf("sequence after the change %s, want acaabaca", got)
		}
	})
}

// TestRoundRobinFallbackCoversAndEnds checks, from every position of the
// period, that a selection's candidates cover every backend and end within
// its shared draws plus one period.
func TestRoundRobinFallbackCoversAndEnds(t *testing.T) {
	for _, mode := range roundRobinModes {
		for _, ws := range shareWeightSets {
			t.Run(mode.name+"/"+ws.name, func(t *testing.T) {
				backends := selTestBackends(ws.weights...)
				sel := buildSelector(t, mode.make(), backends)
				bound := (liveDrawsPerBackend+1)*len(backends) + 2*smoothPeriod(backends)
				for pos := 0; pos < smoothPeriod(backends) && pos < 200; pos++ {
					walk := walkSelection(t, sel, bound)
					seen := map[int]bool{}
					for _, i := range walk {
						seen[i] = true
					}
					if len(seen) != len(backends) {
						t.Fatalf("selection %d saw %d of %d backends", pos, len(seen), len(backends))
					}
				}
			})
		}
	}
}

// TestRoundRobinSkipsDeadTurnsEvenly is the reason for the fallback's
// shared draws: a dead backend's turns are spread over the live ones in
// rotation order, so traffic among them stays interleaved, as in nginx.
func TestRoundRobinSkipsDeadTurnsEvenly(t *testing.T) {
	tests := []struct {
		weights []int
		dead    int
		want    string
	}{
		{[]int{1, 1, 1}, 2, "abababababab"},
		{[]int{1, 1, 1}, 0, "bcbcbcbcbcbc"},
		{[]int{5, 1, 1}, 0, "bcbcbcbcbcbc"},
		{[]int{2, 1, 1}, 1, "acaacaacaaca"},
	}
	for _, mode := range roundRobinModes {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%v/dead=%c", mode.name, tc.weights, 'a'+tc.dead), func(t *testing.T) {
				sel := buildSelector(t, mode.make(), selTestBackends(tc.weights...))
				var got []int
				for range len(tc.want) {
					c := sel.Start(nil)
					for {
						idx, next, ok := sel.Next(c)
						if !ok {
							t.Fatal("selection ended without a live backend")
						}
						c = next
						if idx != tc.dead {
							got = append(got, idx)
							break
						}
					}
				}
				if s := letters(got); s != tc.want {
					t.Fatalf("live picks %s, want %s", s, tc.want)
				}
			})
		}
	}
}

// TestFillSpans checks the fallback spans against a direct count.
func TestFillSpans(t *testing.T) {
	for _, tc := range append([]selWeightSet{{"2,7,1", []int{2, 7, 1}}}, shareWeightSets...) {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.weights)
			seq := smoothTable(selTestBackends(tc.weights...))
			for start := range seq {
				seen, distinct, span := make([]bool, n), 0, 0
				for distinct < n {
					idx := seq[(start+span)%len(seq)].index
					if !seen[idx] {
						seen[idx] = true
						distinct++
					}
					span++
				}
				if int(seq[start].span) != span {
					t.Fatalf("position %d: span %d, want %d", start, seq[start].span, span)
				}
			}
		})
	}
}

// TestRoundRobinConcurrent picks from several goroutines while another
// rebuilds the selector with the same list; run it with -race. The position
// (table) or state (live) is shared across the rebuilds, so every period of
// picks is complete and the counts are exactly proportional to the weights.
func TestRoundRobinConcurrent(t *testing.T) {
	const goroutines, periods = 4, 2000
	weights := []int{5, 1, 1}
	for _, mode := range roundRobinModes {
		t.Run(mode.name, func(t *testing.T) {
			rr := mode.make()
			var current atomic.Pointer[selectorBox]
			current.Store(&selectorBox{buildSelector(t, rr, selTestBackends(weights...))})

			stop := make(chan struct{})
			var rebuilder sync.WaitGroup
			rebuilder.Go(func() {
				for range 1000 {
					select {
					case <-stop:
						return
					default:
					}
					sel, err := rr.Build(selTestBackends(weights...))
					if err != nil {
						t.Errorf("rebuild: %v", err)
						return
					}
					current.Store(&selectorBox{sel})
				}
			})
			counts := concurrentFirstPicks(t, func() Selector { return current.Load().Selector },
				len(weights), goroutines, periods*7/goroutines, nil)
			close(stop)
			rebuilder.Wait()

			for i, w := range weights {
				if want := w * periods; counts[i] != want {
					t.Errorf("backend %d (weight %d): %d picks, want %d", i, w, counts[i], want)
				}
			}
		})
	}
}

// selectorBox lets an atomic.Pointer hold a Selector interface.
type selectorBox struct{ Selector }

func BenchmarkRoundRobin(b *testing.B) {
	b.Run("table", func(b *testing.B) { benchmarkSelector(b, &RoundRobin{}) })
	b.Run("live", func(b *testing.B) { benchmarkSelector(b, &RoundRobin{tableLimit: 1}) })
}

// BenchmarkRoundRobinBuild measures the cost of a rebuild at the table's
// limits: the longest period, and the most build work.
func BenchmarkRoundRobinBuild(b *testing.B) {
	longPeriod := selTestBackends(MaxWeight, MaxWeight-1, MaxWeight-2, MaxWeight-3, MaxWeight-4, MaxWeight-5, 5545)
	cases := []struct {
		name string
		bs   []Backend
	}{
		{"100 mixed", selTestBackends(mixedWeights(100)...)},
		{"period 65530", longPeriod},
		{"4096 equal", selTestBackends(make4096Ones()...)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := (&RoundRobin{}).Build(tc.bs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
