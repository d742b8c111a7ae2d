package l7

import (
	"net"
	"testing"

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
