package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

// A service counted into weir's metrics: the HTTPService is the proxy's
// Observer, and the load balancer resolves each backend's counters once,
// when the backend joins (Balancer sets Options.Attach).
func Example() {
	m := metrics.New(metrics.Build{Version: "v1.0.0"})
	svc := m.HTTPService("web")

	static, _ := lb.NewStatic() // no backends: weir answers 503 itself
	opts := lb.Options{Discovery: static}
	m.Balancer("web", &opts, svc)
	pool, _ := lb.New(&lb.RoundRobin{}, opts)
	pool.Update(context.Background())
	m.WatchBalancer("web", pool.Status)

	proxy := &l7.Server{Name: "web", Proxy: &l7.Balanced{LB: pool}, Observer: svc}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(ln)
	resp, _ := http.Get("http://" + ln.Addr().String() + "/")
	resp.Body.Close()
	proxy.Shutdown(context.Background()) // every request done, and counted

	exposition := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	srv := &http.Server{Handler: exposition}
	ml, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ml)
	defer srv.Close()
	mresp, _ := http.Get("http://" + ml.Addr().String() + "/metrics")
	scrape, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, line := range strings.Split(string(scrape), "\n") {
		if strings.HasPrefix(line, `weir_http_requests_total{backend="",code="5xx"`) ||
			strings.HasPrefix(line, `weir_http_upstream_errors_total{backend="",reason="unavailable"`) {
			fmt.Println(line)
		}
	}
	// Output:
	// weir_http_requests_total{backend="",code="5xx",service="web"} 1
	// weir_http_upstream_errors_total{backend="",reason="unavailable",service="web"} 1
}
