package metrics_test

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/limit"
	"github.com/weir-lb/weir/pkg/metrics"
)

// TestLimitFamilies reads a service's limiters and listener gate at
// scrape time: tracked clients, clients connected, connections in use
// and the times the listener was full; every limit has its refusal
// counter from the start. The exposition passes promtool.
func TestLimitFamilies(t *testing.T) {
	rl, err := limit.NewRateLimiter(limit.RateConfig{Rate: limit.Rate{PerSecond: 1, Burst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := limit.NewConnLimiter(limit.ConnConfig{Max: 4})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"} {
		rl.Allow(netip.MustParseAddr(a), now)
	}
	cl.Acquire(netip.MustParseAddr("192.0.2.1"))
	cl.Acquire(netip.MustParseAddr("192.0.2.2"))
	gate, err := limit.NewGate(2)
	if err != nil {
		t.Fatal(err)
	}
	gate.TryAcquire()
	var limited atomic.Uint64
	limited.Add(5)

	m := metrics.New(metrics.Build{Version: "test"})
	m.WatchLimits(metrics.LimitSource{
		Service:   "web",
		Limits:    &l7.ClientLimits{Rate: rl, Conns: cl},
		Listeners: []metrics.ListenerSource{{Listener: "127.0.0.1:8080", Gate: gate, Limited: &limited}, {Listener: "127.0.0.1:8081"}},
	})
	m.WatchLimits(metrics.LimitSource{Service: "plain"})

	svc := map[string]string{"service": "web"}
	lis := map[string]string{"service": "web", "listener": "127.0.0.1:8080"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"weir_rate_limit_clients", svc, 3},
		{"weir_rate_limit_evictions_total", svc, 0},
		{"weir_client_connection_limit_clients", svc, 2},
		{"weir_listener_connections", lis, 1},
		{"weir_listener_limited_total", lis, 5},
		{"weir_http_limited_total", map[string]string{"service": "web", "limit": "rate"}, 0},
		{"weir_http_limited_total", map[string]string{"service": "web", "limit": "client_connections"}, 0},
	} {
		if got := value(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	text := scrape(t, "http://"+serveMetrics(t, m)+"/metrics", "")
	for _, want := range []string{
		"# TYPE weir_http_limited_total counter",
		"# TYPE weir_listener_connections gauge",
		`weir_http_limited_total{limit="header",service="web"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(text, `service="plain"`) || strings.Contains(text, "8081") {
		t.Error("a service without limits or a listener without max_connections has series")
	}
	testenv.Promtool(t, text)
}
