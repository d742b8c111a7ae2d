package metrics_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/metrics"
)

// TestPrometheusScrapes runs a real Prometheus server (Debian's
// prometheus package) against weir's metrics and asks its query API for
// the request rate, as an operator's dashboard would.
func TestPrometheusScrapes(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "test"})
	p := startProxy(t, m, origin(t, "a"))
	target := serveMetrics(t, m)
	api := testenv.Prometheus(t, target)

	// Traffic for as long as it takes Prometheus to see a rate: it needs
	// two scrapes inside the rate window. Bounded: 30 s at most.
	const query = `sum(rate(weir_http_requests_total{service="web",code="2xx"}[10s]))`
	deadline := time.Now().Add(30 * time.Second)
	for {
		get(t, p.addr, 20)
		rate, ok := testenv.PromQuery(t, api, query)
		if ok && rate > 0 {
			t.Logf("Prometheus reports %.1f requests/s", rate)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never reported a request rate for %s", query)
		}
		time.Sleep(200 * time.Millisecond)
	}
	up, ok := testenv.PromQuery(t, api, `up{job="`+testenv.PrometheusJob+`"}`)
	if !ok || up != 1 {
		t.Errorf("up{job=weir} = %v (%v), want 1: the scrape failed", up, ok)
	}
}

// serveMetrics serves m's registry on loopback and returns host:port.
func serveMetrics(t *testing.T, m *metrics.Metrics) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
