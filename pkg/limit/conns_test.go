package limit

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestConnLimiter(t *testing.T) {
	type op struct {
		acquire bool // else release
		addr    string
		want    bool // Acquire's answer
		count   int  // the client's count after
	}
	const a, b = "192.0.2.1", "2001:db8::1"
	tests := []struct {
		name string
		cfg  ConnConfig
		ops  []op
	}{
		{"up to max, then refused until a release", ConnConfig{Max: 2}, []op{
			{true, a, true, 1},
			{true, a, true, 2},
			{true, a, false, 2},
			{true, b, true, 1},
			{false, a, false, 1},
			{true, a, true, 2},
			{true, "::ffff:" + a, false, 2},
		}},
		{"releases never go below zero", ConnConfig{Max: 1}, []op{
			{false, a, false, 0},
			{true, a, true, 1},
			{false, a, false, 0},
			{false, a, false, 0},
			{true, a, true, 1},
			{true, a, false, 1},
		}},
		{"IPv6 /64 is one client", ConnConfig{Max: 2, Key: Key{IPv6Prefix: 64}}, []op{
			{true, "2001:db8::1", true, 1},
			{true, "2001:db8::2", true, 2},
			{true, "2001:db8::3", false, 2},
			{true, "2001:db8:0:1::1", true, 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewConnLimiter(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range tt.ops {
				addr := netip.MustParseAddr(o.addr)
				if o.acquire {
					if got := l.Acquire(addr); got != o.want {
						t.Errorf("op %d: Acquire(%s) = %v; want %v", i, addr, got, o.want)
					}
				} else {
					l.Release(addr)
				}
				if got := l.Count(addr); got != o.count {
					t.Errorf("op %d: Count(%s) = %d; want %d", i, addr, got, o.count)
				}
			}
		})
	}
}

func TestConnLimiterEntriesGo(t *testing.T) {
	l, err := NewConnLimiter(ConnConfig{Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		l.Acquire(addrN(i))
		l.Acquire(addrN(i))
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("Len = %d; want 100", n)
	}
	for i := range 100 {
		l.Release(addrN(i))
		l.Release(addrN(i))
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len = %d after every release; want 0", n)
	}
	if !l.Acquire(netip.Addr{}) || !l.Acquire(netip.Addr{}) || l.Len() != 0 {
		t.Error("an invalid address should be let in, untracked")
	}
}

func TestConnLimiterConcurrent(t *testing.T) {
	const max = 3
	l, err := NewConnLimiter(ConnConfig{Max: max})
	if err != nil {
		t.Fatal(err)
	}
	var open [8]atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 3000 {
				c := i % len(open)
				addr := addrN(c)
				if !l.Acquire(addr) {
					continue
				}
				if n := open[c].Add(1); n > max {
					t.Errorf("%v has %d connections open > %d", addr, n, max)
				}
				open[c].Add(-1)
				l.Release(addr)
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n != 0 {
		t.Errorf("Len = %d after every release; want 0", n)
	}
}

func TestConnLimiterAllocs(t *testing.T) {
	l, err := NewConnLimiter(ConnConfig{Max: 2, Key: Key{IPv6Prefix: 64}})
	if err != nil {
		t.Fatal(err)
	}
	a4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	l.Acquire(a4)
	l.Acquire(a6)
	if n := testing.AllocsPerRun(1000, func() {
		l.Acquire(a4)
		l.Release(a4)
		l.Acquire(a6)
		l.Release(a6)
	}); n != 0 {
		t.Errorf("Acquire+Release for a known client: %v allocs; want 0", n)
	}
	// A client whose entry comes and goes reuses the map's space.
	l.Release(a4)
	if n := testing.AllocsPerRun(1000, func() {
		l.Acquire(a4)
		l.Release(a4)
	}); n != 0 {
		t.Errorf("Acquire+Release of a client's only connection: %v allocs; want 0", n)
	}
}

func TestConnConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  ConnConfig
		want string
	}{
		{ConnConfig{Max: 0}, "out of range"},
		{ConnConfig{Max: -1}, "out of range"},
		{ConnConfig{Max: 1, Key: Key{IPv4Prefix: 40}}, "IPv4 prefix length 40"},
	} {
		if _, err := NewConnLimiter(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewConnLimiter(%+v) = %v; want an error with %q", tt.cfg, err, tt.want)
		}
	}
}
