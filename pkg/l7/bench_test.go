package l7

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
)

// BenchmarkProxiedRequest measures one small keep-alive request through
// the proxy to a backend and back, over loopback sockets. The client is a
// raw allocation-free loop and the backend is weir's own Respond server,
// so allocs/op counts the proxy's allocations plus the backend's.
func BenchmarkProxiedRequest(b *testing.B) {
	benchProxied(b, benchBackend(b), benchRequest)
}

// BenchmarkProxiedRequestRetryPolicy is BenchmarkProxiedRequest with a
// retry policy and budget that never fire: what a policy costs a request
// that succeeds.
func BenchmarkProxiedRequestRetryPolicy(b *testing.B) {
	p := benchBackend(b)
	p.Template.Retry = &retry.Policy{
		On:       retry.Of(retry.Connect, retry.Reset, retry.Timeout, retry.Status502, retry.Status503, retry.Status504),
		Attempts: 3, PerTryTimeout: time.Second,
		Budget: &retry.Budget{Percent: retry.DefaultBudgetPercent, MinConcurrency: retry.DefaultBudgetMinConcurrency},
	}
	benchProxied(b, p, benchRequest)
}

// benchRequest is the request of BenchmarkProxiedRequest, head and
// fields up to the blank line, which benchProxied adds.
const benchRequest = "GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: weir-bench\r\nAccept: */*\r\n"

// benchProxied runs p on a loopback listener and measures head, a
// request head without its blank line, sent through it again and again
// on one keep-alive connection to a benchBackend.
func benchProxied(b *testing.B, p Proxy, head string) {
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	proxy := &Server{Proxy: p}
	go proxy.Serve(pl)
	defer proxy.Close()

	exchange := testenv.FixedExchange(b, pl.Addr().String(), []byte(head+"\r\n"), len("ok\n"))
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}

// benchBackend starts weir's Respond server answering "ok\n" on loopback
// until the benchmark ends, and returns a round-robin proxy to it.
func benchBackend(b *testing.B) *Balanced {
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backend := &Server{Proxy: &Respond{Status: 200, Body: []byte("ok\n")}}
	go backend.Serve(bl)
	b.Cleanup(func() { backend.Close() })
	pool, _ := lb.NewStatic(lb.MustBackend(bl.Addr().String(), 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	upstream.Update(context.Background())
	return &Balanced{LB: upstream}
}
