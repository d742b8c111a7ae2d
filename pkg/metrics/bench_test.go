package metrics_test

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/weir-lb/weir/pkg/metrics"
)

// BenchmarkProxiedRequestCounted is l7's BenchmarkProxiedRequest with the
// service's metrics and request ids on: it must stay at 0 allocations.
func BenchmarkProxiedRequestCounted(b *testing.B) {
	m := metrics.New(metrics.Build{})
	p := startProxy(b, m, origin(b, "ok\n"))
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: weir-bench\r\nAccept: */*\r\nX-Request-Id: bench-1\r\n\r\n")
	br := bufio.NewReaderSize(c, 4096)
	// The response is fixed (the id is the client's): learn its length
	// once, then read exactly it, so that only the proxy's allocations
	// count.
	c.Write(req)
	headLen := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		headLen += len(line)
		if len(line) <= 2 {
			break
		}
	}
	if _, err := br.Discard(3); err != nil { // "ok\n"
		b.Fatal(err)
	}
	buf := make([]byte, headLen+3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
}
