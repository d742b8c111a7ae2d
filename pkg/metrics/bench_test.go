package metrics_test

import (
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/metrics"
)

// BenchmarkProxiedRequestCounted is l7's BenchmarkProxiedRequest with the
// service's metrics and request ids on: it must stay at 0 allocations.
func BenchmarkProxiedRequestCounted(b *testing.B) {
	m := metrics.New(metrics.Build{})
	p := startProxy(b, m, origin(b, "ok\n"))
	// The client's id makes every response the same length.
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: weir-bench\r\nAccept: */*\r\nX-Request-Id: bench-1\r\n\r\n")
	exchange := testenv.FixedExchange(b, p.addr, req, len("ok\n"))
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}
