package limit

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
)

// A fixed time: the benchmarks measure the limiter, not the clock (a
// server passes the time.Now it read for the request anyway).
func benchLimiter(b *testing.B, maxClients int) *RateLimiter {
	b.Helper()
	l, err := NewRateLimiter(RateConfig{Rate: Rate{PerSecond: 1e9, Burst: 1 << 20}, Key: Key{IPv6Prefix: 64}, MaxClients: maxClients})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkAllowOneClient(b *testing.B) {
	l := benchLimiter(b, 0)
	a := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(a, t0)
	}
}

// Every goroutine hammers the same client: one shard's mutex, contended.
func BenchmarkAllowOneClientParallel(b *testing.B) {
	l := benchLimiter(b, 0)
	a := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(a, t0)
		}
	})
}

// Many known clients (65,536, IPv4 and IPv6) from every goroutine: the
// shards spread the lock.
func BenchmarkAllowManyClientsParallel(b *testing.B) {
	const clients = 1 << 16
	l := benchLimiter(b, 0)
	addrs := make([]netip.Addr, clients)
	for i := range addrs {
		addrs[i] = addrN(i)
		l.Allow(addrs[i], t0)
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919) // each goroutine starts elsewhere
		for pb.Next() {
			i++
			l.Allow(addrs[i%clients], t0)
		}
	})
}

// A new client on every call, at the MaxClients bound: every call evicts.
func BenchmarkAllowNewClientsAtBound(b *testing.B) {
	const max = 1 << 14
	l, err := NewRateLimiter(RateConfig{Rate: Rate{PerSecond: 1, Burst: 2}, MaxClients: max})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2 * max {
		l.Allow(addrN(i), t0)
	}
	var next atomic.Uint32
	next.Store(2 * max)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(addrN(int(next.Add(1))), t0)
		}
	})
}

func BenchmarkConnAcquireReleaseParallel(b *testing.B) {
	l, err := NewConnLimiter(ConnConfig{Max: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		a := addrN(int(next.Add(1)))
		for pb.Next() {
			l.Acquire(a)
			l.Release(a)
		}
	})
}

func BenchmarkGateParallel(b *testing.B) {
	g, err := NewGate(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Acquire(ctx)
			g.Release()
		}
	})
}
