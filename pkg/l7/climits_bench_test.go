package l7

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/limit"
)

// BenchmarkProxiedRequestLimited is BenchmarkProxiedRequest with every
// client limit configured but never reached: a rate limit, a per-client
// connection limit, a body limit and head limits. Compare its ns/op with
// BenchmarkProxiedRequest's: the difference is what the limits cost a
// request that passes them.
func BenchmarkProxiedRequestLimited(b *testing.B) {
	rl, err := limit.NewRateLimiter(limit.RateConfig{Rate: limit.Rate{PerSecond: 1e9, Burst: 1e9}, Key: limit.Key{IPv6Prefix: 64}})
	if err != nil {
		b.Fatal(err)
	}
	conns, err := limit.NewConnLimiter(limit.ConnConfig{Max: 1000})
	if err != nil {
		b.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	proxy := &Server{
		Proxy:        benchBackend(b),
		Limits:       h1.Limits{MaxHeaderBytes: 16 << 10, MaxHeaders: 50},
		ClientLimits: &ClientLimits{Rate: rl, Conns: conns, MaxRequestBody: 1 << 20},
	}
	go proxy.Serve(pl)
	defer proxy.Close()

	exchange := testenv.FixedExchange(b, pl.Addr().String(), []byte(benchRequest+"\r\n"), len("ok\n"))
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
	if n := proxy.ClientLimits.Limited(LimitRate); n != 0 {
		b.Fatalf("%d requests were rate limited", n)
	}
}

// BenchmarkCheckLimits measures what the limits add to a request that
// passes them, alone (BenchmarkProxiedRequestLimited's difference is
// lost in the noise of a whole exchange): the rate limiter's update and
// the body check, for one client and, in parallel, for 256 known clients a goroutine.
func BenchmarkCheckLimits(b *testing.B) {
	rl, err := limit.NewRateLimiter(limit.RateConfig{Rate: limit.Rate{PerSecond: 1e9, Burst: 1e9}})
	if err != nil {
		b.Fatal(err)
	}
	srv := &Server{ClientLimits: &ClientLimits{Rate: rl, MaxRequestBody: 1 << 20}}
	b.Run("one client", func(b *testing.B) {
		r := &request{srv: srv}
		r.sess.Client = netip.MustParseAddrPort("192.0.2.1:40000")
		r.sess.Start = time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if answered, _ := r.checkLimits(&r.sess); answered {
				b.Fatal("limited")
			}
		}
	})
	b.Run("known clients parallel", func(b *testing.B) {
		var next atomic.Uint32
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := &request{srv: srv}
			n := next.Add(1)
			r.sess.Start = time.Now()
			for i := uint32(0); pb.Next(); i++ {
				r.sess.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n), 0, byte(i)}), 40000)
				if answered, _ := r.checkLimits(&r.sess); answered {
					b.Fatal("limited")
				}
			}
		})
	})
}
