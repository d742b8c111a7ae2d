package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

// BenchmarkProxiedRequestObserved is pkg/l7's BenchmarkProxiedRequest
// with everything an operator turns on: metrics, an access log in the
// combined format written to a file, and request ids. It must stay at 0
// allocations per request.
func BenchmarkProxiedRequestObserved(b *testing.B) {
	origin := &l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("ok\n")}}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go origin.Serve(ol)
	defer origin.Close()

	format, err := accesslog.ParseFormat(accesslog.Combined)
	if err != nil {
		b.Fatal(err)
	}
	logs := accesslog.NewWriters(accesslog.Options{})
	defer logs.CloseAll()
	m := metrics.New(metrics.Build{})
	s := &Server{metrics: m, accessLogs: logs}
	sc := &config.Service{Name: "bench", AccessLog: &config.AccessLog{Path: filepath.Join(b.TempDir(), "access.log"), Format: format}}
	obs, err := s.observer(sc)
	if err != nil {
		b.Fatal(err)
	}
	static, _ := lb.NewStatic(lb.MustBackend(ol.Addr().String(), 1))
	opts := lb.Options{Discovery: static}
	m.Balancer("bench", &opts, obs.metrics)
	pool, _ := lb.New(&lb.RoundRobin{}, opts)
	pool.Update(context.Background())
	proxy := &l7.Server{Name: "bench", Proxy: &l7.Balanced{LB: pool}, Observer: obs, RequestID: true}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go proxy.Serve(pl)
	defer proxy.Close()

	// The client's id makes every response the same length.
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: weir-bench\r\nAccept: */*\r\nX-Request-Id: bench-1\r\n\r\n")
	exchange := testenv.FixedExchange(b, pl.Addr().String(), req, len("ok\n"))
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}
