package limit

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)

func mustRate(t testing.TB, cfg RateConfig) *RateLimiter {
	t.Helper()
	l, err := NewRateLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// step is one request: at t0+at from addr, with the expected answer.
type step struct {
	at    time.Duration
	addr  string
	ok    bool
	retry time.Duration
}

func TestAllow(t *testing.T) {
	const a, b = "192.0.2.1", "192.0.2.2"
	tests := []struct {
		name  string
		cfg   RateConfig
		steps []step
	}{
		{"burst then refill", RateConfig{Rate: Rate{PerSecond: 10, Burst: 3}}, []step{
			{0, a, true, 0},
			{0, a, true, 0},
			{0, a, true, 0},
			{0, a, false, 100 * time.Millisecond},
			{30 * time.Millisecond, a, false, 70 * time.Millisecond},
			// A refused request takes nothing: the wait is unchanged.
			{30 * time.Millisecond, a, false, 70 * time.Millisecond},
			{100 * time.Millisecond, a, true, 0},
			{100 * time.Millisecond, a, false, 100 * time.Millisecond},
			// 250 ms refill 2.5 tokens; the bucket had none after 100 ms.
			{350 * time.Millisecond, a, true, 0},
			{350 * time.Millisecond, a, true, 0},
			{350 * time.Millisecond, a, false, 50 * time.Millisecond},
			// A full bucket holds Burst, however long the client was away.
			{time.Hour, a, true, 0},
			{time.Hour, a, true, 0},
			{time.Hour, a, true, 0},
			{time.Hour, a, false, 100 * time.Millisecond},
		}},
		{"clients are separate", RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}}, []step{
			{0, a, true, 0},
			{0, a, false, time.Second},
			{0, b, true, 0},
			{0, b, false, time.Second},
			{999 * time.Millisecond, a, false, time.Millisecond},
			{time.Second, a, true, 0},
		}},
		{"one every two seconds", RateConfig{Rate: Every(2*time.Second, 1)}, []step{
			{0, a, true, 0},
			{1500 * time.Millisecond, a, false, 500 * time.Millisecond},
			{2 * time.Second, a, true, 0},
			{2 * time.Second, a, false, 2 * time.Second},
		}},
		{"a fractional interval is exact to the nanosecond", RateConfig{Rate: Rate{PerSecond: 3, Burst: 1}}, []step{
			{0, a, true, 0},
			{0, a, false, 333_333_333},
			{333_333_332, a, false, 1},
			{333_333_333, a, true, 0},
		}},
		{"steady rate at the limit", RateConfig{Rate: Rate{PerSecond: 100, Burst: 1}}, []step{
			{0, a, true, 0},
			{10 * time.Millisecond, a, true, 0},
			{20 * time.Millisecond, a, true, 0},
			{29 * time.Millisecond, a, false, time.Millisecond},
			{30 * time.Millisecond, a, true, 0},
		}},
		{"IPv6 /64 is one client", RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}, Key: Key{IPv6Prefix: 64}}, []step{
			{0, "2001:db8:1:2::1", true, 0},
			{0, "2001:db8:1:2:ffff:ffff:ffff:ffff", true, 0},
			{0, "2001:db8:1:2:abcd::", false, time.Second},
			{0, "2001:db8:1:3::1", true, 0},
			// IPv4 stays per address under an IPv6 prefix.
			{0, a, true, 0},
			{0, b, true, 0},
		}},
		{"IPv6 per address by default", RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}}, []step{
			{0, "2001:db8::1", true, 0},
			{0, "2001:db8::2", true, 0},
			{0, "2001:db8::1", false, time.Second},
		}},
		{"IPv4 /32, mapped and zoned forms are the same client", RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}}, []step{
			{0, a, true, 0},
			{0, "::ffff:" + a, true, 0},
			{0, a, false, time.Second},
			{0, "fe80::1%eth0", true, 0},
			{0, "fe80::1%eth1", true, 0},
			{0, "fe80::1", false, time.Second},
		}},
		{"IPv4 /24", RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}, Key: Key{IPv4Prefix: 24}}, []step{
			{0, "198.51.100.1", true, 0},
			{0, "198.51.100.254", false, time.Second},
			{0, "198.51.101.1", true, 0},
		}},
		{"an IPv4 network is never an IPv6 one", RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}, Key: Key{IPv4Prefix: 8, IPv6Prefix: 8}}, []step{
			{0, "10.0.0.1", true, 0},
			{0, "::a00:1", true, 0}, // IPv4-compatible: a plain IPv6 address
			{0, "::ffff:10.9.9.9", false, time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustRate(t, tt.cfg)
			for i, s := range tt.steps {
				ok, retry := l.Allow(netip.MustParseAddr(s.addr), t0.Add(s.at))
				if ok != s.ok || retry != s.retry {
					t.Errorf("step %d (%s at +%v): Allow = %v, %v; want %v, %v", i, s.addr, s.at, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestAllowInvalidAddrIsNotLimited(t *testing.T) {
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}})
	for range 3 {
		if ok, retry := l.Allow(netip.Addr{}, t0); !ok || retry != 0 {
			t.Fatalf("Allow(invalid) = %v, %v; want true, 0", ok, retry)
		}
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len = %d after invalid addresses; want 0", n)
	}
}

func TestRateValidate(t *testing.T) {
	tests := []struct {
		cfg  RateConfig
		want string // substring of the error, "" for none
	}{
		{RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}}, ""},
		{RateConfig{Rate: Rate{PerSecond: 0.001, Burst: 1000}}, ""},
		{RateConfig{Rate: Rate{PerSecond: 0, Burst: 1}}, "not a positive"},
		{RateConfig{Rate: Rate{PerSecond: -1, Burst: 1}}, "not a positive"},
		{RateConfig{Rate: Rate{PerSecond: math.NaN(), Burst: 1}}, "not a positive"},
		{RateConfig{Rate: Every(0, 1)}, "not a positive"},
		{RateConfig{Rate: Rate{PerSecond: 1, Burst: 0}}, "burst 0"},
		{RateConfig{Rate: Rate{PerSecond: 1e-9, Burst: 1 << 30}}, "more time"},
		{RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}, MaxClients: -1}, "negative"},
		{RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}, Key: Key{IPv4Prefix: 33}}, "IPv4 prefix length 33"},
		{RateConfig{Rate: Rate{PerSecond: 1, Burst: 1}, Key: Key{IPv6Prefix: -1}}, "IPv6 prefix length -1"},
	}
	for _, tt := range tests {
		_, err := NewRateLimiter(tt.cfg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("NewRateLimiter(%+v): %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("NewRateLimiter(%+v) = %v; want an error with %q", tt.cfg, err, tt.want)
		}
	}
}

func TestKeyPrefix(t *testing.T) {
	tests := []struct {
		key  Key
		addr string
		want string
	}{
		{Key{}, "192.0.2.7", "192.0.2.7/32"},
		{Key{}, "::ffff:192.0.2.7", "192.0.2.7/32"},
		{Key{IPv4Prefix: 24}, "192.0.2.7", "192.0.2.0/24"},
		{Key{}, "2001:db8::7", "2001:db8::7/128"},
		{Key{IPv6Prefix: 64}, "2001:db8:a:b:c:d:e:f", "2001:db8:a:b::/64"},
		{Key{IPv6Prefix: 56}, "fe80::1%eth0", "fe80::/56"},
	}
	for _, tt := range tests {
		if got := tt.key.Prefix(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("%+v.Prefix(%s) = %s; want %s", tt.key, tt.addr, got, tt.want)
		}
	}
	if p := (Key{}).Prefix(netip.Addr{}); p.IsValid() {
		t.Errorf("Prefix(invalid) = %v; want the zero Prefix", p)
	}
}

// addrN returns the n-th of many distinct addresses, IPv4 or IPv6.
func addrN(n int) netip.Addr {
	if n%2 == 0 {
		return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(n >> 16), 14: byte(n >> 8), 15: byte(n)})
}

func TestMaxClientsBound(t *testing.T) {
	for _, max := range []int{1, 20, 64, 1000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			// Burst 2, so a client that sent one request is not full, and
			// evicting it loses state.
			l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}, MaxClients: max})
			for i := range 5 * max {
				if ok, _ := l.Allow(addrN(i), t0); !ok {
					t.Fatalf("new client %d refused", i)
				}
				if n := l.Len(); n > max {
					t.Fatalf("after %d clients: Len = %d > MaxClients %d", i+1, n, max)
				}
			}
			if n := l.Len(); n < max/2 {
				t.Errorf("Len = %d; a full limiter should track close to MaxClients %d", n, max)
			}
			// Every eviction lost state: no bucket was full at t0.
			if got, want := l.Evicted(), uint64(5*max-l.Len()); got != want {
				t.Errorf("Evicted = %d; want %d", got, want)
			}
		})
	}
}

func TestFullBucketsGoFirst(t *testing.T) {
	const max = 16 // one shard, so the test knows which shard is full
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}, MaxClients: max})
	for i := range max {
		l.Allow(addrN(i), t0)
	}
	if n, e := l.Len(), l.Evicted(); n != max || e != 0 {
		t.Fatalf("Len = %d, Evicted = %d; want %d, 0", n, e, max)
	}
	// A second later the first clients' buckets are full again: new
	// clients take their places without evicting anyone with state.
	later := t0.Add(time.Second)
	for i := max; i < 2*max; i++ {
		l.Allow(addrN(i), later)
	}
	if n, e := l.Len(), l.Evicted(); n != max || e != 0 {
		t.Fatalf("Len = %d, Evicted = %d; want %d, 0", n, e, max)
	}
	// Now every bucket has state: one more client evicts one of them.
	l.Allow(addrN(2*max), later)
	if n, e := l.Len(), l.Evicted(); n != max || e != 1 {
		t.Fatalf("Len = %d, Evicted = %d; want %d, 1", n, e, max)
	}
	// Sweep forgets every full bucket.
	if n := l.Sweep(later.Add(time.Second)); n != max || l.Len() != 0 {
		t.Errorf("Sweep = %d, then Len = %d; want %d, 0", n, l.Len(), max)
	}
}

func TestSweepKeepsState(t *testing.T) {
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	l.Allow(a, t0)
	l.Allow(a, t0)
	l.Allow(b, t0.Add(1500*time.Millisecond))
	// At t0+2s a's bucket is full again (2 tokens in 2 s), b's is not.
	if n := l.Sweep(t0.Add(2 * time.Second)); n != 1 {
		t.Errorf("Sweep = %d; want 1", n)
	}
	if n := l.Len(); n != 1 {
		t.Errorf("Len = %d; want 1", n)
	}
	l.Allow(b, t0.Add(2*time.Second))
	if ok, retry := l.Allow(b, t0.Add(2*time.Second)); ok || retry != 500*time.Millisecond {
		t.Errorf("b after sweep: Allow = %v, %v; want false, 500ms", ok, retry)
	}
}

func TestAllowConcurrent(t *testing.T) {
	const (
		goroutines = 8
		calls      = 2000
		burst      = 100
	)
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: burst}, MaxClients: 256})
	shared := netip.MustParseAddr("2001:db8:ffff::1") // no addrN
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			n := 0
			for i := range calls {
				// The clock stands still: the shared client gets exactly
				// its burst, whoever asks.
				if ok, _ := l.Allow(shared, t0); ok {
					n++
				}
				l.Allow(addrN(g*calls+i), t0) // churn: other clients, evictions
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	// The shared client might be evicted by the churn and start afresh;
	// with 256 slots and 8 samples per eviction that is rare but
	// possible, so allow it only as an eviction count says.
	if allowed < burst {
		t.Errorf("shared client allowed %d; want at least its burst %d", allowed, burst)
	}
	if allowed > burst && l.Evicted() == 0 {
		t.Errorf("shared client allowed %d > burst %d without evictions", allowed, burst)
	}
	if n := l.Len(); n > 256 {
		t.Errorf("Len = %d > 256", n)
	}
}

func TestAllowConcurrentExact(t *testing.T) {
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: 50}})
	var mu sync.Mutex
	allowed := map[netip.Addr]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := map[netip.Addr]int{}
			for i := range 4000 {
				a := addrN(i % 40)
				if ok, _ := l.Allow(a, t0); ok {
					local[a]++
				}
			}
			mu.Lock()
			for a, n := range local {
				allowed[a] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range 40 {
		if n := allowed[addrN(i)]; n != 50 {
			t.Errorf("%v allowed %d times; want exactly its burst 50", addrN(i), n)
		}
	}
}

func TestAllowAllocs(t *testing.T) {
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1e6, Burst: 10}, Key: Key{IPv6Prefix: 64}})
	a4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	now := t0
	l.Allow(a4, now)
	l.Allow(a6, now)
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Microsecond)
		l.Allow(a4, now)
		l.Allow(a6, now)
	}); n != 0 {
		t.Errorf("Allow for a known client: %v allocs; want 0", n)
	}
}

func TestAllowAllocsNewClientsAtBound(t *testing.T) {
	const max = 1024
	l := mustRate(t, RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}, MaxClients: max})
	i := 0
	for ; i < 4*max; i++ {
		l.Allow(addrN(i), t0)
	}
	// At the bound each new client takes an evicted one's slot; the maps
	// have reached their size.
	if n := testing.AllocsPerRun(10*max, func() {
		l.Allow(addrN(i), t0)
		i++
	}); n > 0.01 {
		t.Errorf("Allow for a new client at MaxClients: %v allocs; want ~0", n)
	}
}
