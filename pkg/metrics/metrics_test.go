package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

// origin starts a Respond server on loopback answering body.
func origin(t testing.TB, body string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte(body)}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// proxied is a service "web" balancing over backends, counted by m.
type proxied struct {
	addr string
	lb   *lb.LoadBalancer[*lb.RoundRobin]
	svc  *metrics.HTTPService
	obs  *doneCounter
}

// doneCounter is the service's l7.Observer, counting the requests it was
// told were done. A request is counted in RequestDone, which runs after
// its response was sent (the whole of it, its outcome known), as
// HAProxy's and NGINX's logs are written: a client can read a response
// before it is counted, so a test waits for RequestDone (waitDone)
// before it reads the metrics.
type doneCounter struct {
	l7.Observer
	done   atomic.Int64
	notify chan struct{} // a token after each RequestDone, never blocking it
}

func (c *doneCounter) RequestDone(s *l7.Session, err error) {
	c.Observer.RequestDone(s, err)
	c.done.Add(1)
	select {
	case c.notify <- struct{}{}:
	default: // a token is waiting already
	}
}

// waitDone waits, bounded, until n requests in all were counted.
func (p *proxied) waitDone(t testing.TB, n int64) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for p.obs.done.Load() < n {
		select {
		case <-p.obs.notify:
		case <-timeout:
			t.Fatalf("%d requests counted, want %d", p.obs.done.Load(), n)
		}
	}
}

func startProxy(t testing.TB, m *metrics.Metrics, backends ...string) *proxied {
	svc := m.HTTPService("web")
	var set []lb.Backend
	for _, a := range backends {
		set = append(set, lb.MustBackend(a, 1))
	}
	static, err := lb.NewStatic(set...)
	if err != nil {
		t.Fatal(err)
	}
	opts := lb.Options{Discovery: static}
	m.Balancer("web", &opts, svc)
	bal, err := lb.New(&lb.RoundRobin{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := bal.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.WatchBalancer("web", bal.Status)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	obs := &doneCounter{Observer: svc, notify: make(chan struct{}, 1)}
	srv := &l7.Server{Name: "web", Proxy: &l7.Balanced{LB: bal}, Observer: obs, RequestID: true}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &proxied{addr: l.Addr().String(), lb: bal, svc: svc, obs: obs}
}

// get sends n GET requests, on one connection for as long as the proxy
// keeps it open, and counts the statuses and bodies.
func get(t testing.TB, addr string, n int) map[string]int {
	seen := map[string]int{}
	var (
		c  net.Conn
		br *bufio.Reader
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br = bufio.NewReader(c)
		}
		fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: web\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[fmt.Sprintf("%d %s", resp.StatusCode, body)]++
		if resp.Close {
			c.Close()
			c = nil
		}
	}
	return seen
}

// value returns the value of the sample of family name whose labels
// include want, summing every match; histograms give their count.
func value(t testing.TB, m *metrics.Metrics, name string, want map[string]string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if matches(s, want) {
				sum += sampleValue(s)
			}
		}
	}
	return sum
}

func matches(s *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range s.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return 0
}

func TestRequestsCountedByBackendAndClass(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "test"})
	a, b := origin(t, "a"), origin(t, "b")
	p := startProxy(t, m, a, b)

	const n = 40
	seen := get(t, p.addr, n)
	if seen["200 a"]+seen["200 b"] != n || seen["200 a"] == 0 || seen["200 b"] == 0 {
		t.Fatalf("responses %v, want %d split over both backends", seen, n)
	}
	p.waitDone(t, n)
	for backend, body := range map[string]string{a: "a", b: "b"} {
		labels := map[string]string{"service": "web", "backend": backend}
		if got, want := value(t, m, "weir_http_requests_total", with(labels, "code", "2xx")), float64(seen["200 "+body]); got != want {
			t.Errorf("requests_total{backend=%s,code=2xx} = %v, want %v", backend, got, want)
		}
		if got, want := value(t, m, "weir_http_request_duration_seconds", labels), float64(seen["200 "+body]); got != want {
			t.Errorf("request_duration_seconds count for %s = %v, want %v", backend, got, want)
		}
		if got := value(t, m, "weir_http_response_body_bytes_total", labels); got != float64(seen["200 "+body]) {
			t.Errorf("response_body_bytes_total for %s = %v, want one byte a response", backend, got)
		}
		if got := value(t, m, "weir_backend_up", labels); got != 1 {
			t.Errorf("backend_up for %s = %v, want 1", backend, got)
		}
	}
	if got := value(t, m, "weir_http_upstream_connections_total", map[string]string{"kind": "new"}); got != 2 {
		t.Errorf("new upstream connections = %v, want 2 (one per backend, then reused)", got)
	}
	if got := value(t, m, "weir_http_upstream_connections_total", map[string]string{"kind": "reused"}); got != n-2 {
		t.Errorf("reused upstream connections = %v, want %d", got, n-2)
	}
	if got := value(t, m, "weir_http_requests_in_flight", nil); got != 0 {
		t.Errorf("requests in flight after the requests = %v, want 0", got)
	}

	// Drained: no backend serves, weir answers 503 itself.
	for _, be := range []string{a, b} {
		if err := p.lb.SetEnabled(be, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := get(t, p.addr, 3); got["503 "] != 3 {
		t.Fatalf("responses with every backend drained: %v, want 3 × 503", got)
	}
	p.waitDone(t, n+3)
	if got := value(t, m, "weir_http_requests_total", map[string]string{"backend": "", "code": "5xx"}); got != 3 {
		t.Errorf("requests_total{backend=\"\",code=5xx} = %v, want 3", got)
	}
	if got := value(t, m, "weir_http_upstream_errors_total", map[string]string{"reason": "unavailable"}); got != 3 {
		t.Errorf("upstream_errors_total{reason=unavailable} = %v, want 3", got)
	}
	if got := value(t, m, "weir_backend_enabled", map[string]string{"backend": a}); got != 0 {
		t.Errorf("backend_enabled for a drained backend = %v, want 0", got)
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range m {
		out[kk] = vv
	}
	return out
}

func TestClientFaultsAreTheClients(t *testing.T) {
	m := metrics.New(metrics.Build{})
	p := startProxy(t, m, origin(t, "a"))
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	p.waitDone(t, 1)
	if got := value(t, m, "weir_http_requests_total", map[string]string{"code": "4xx"}); got != 1 {
		t.Errorf("4xx requests after a client's malformed request = %v, want 1", got)
	}
	if got := value(t, m, "weir_http_upstream_errors_total", nil); got != 0 {
		t.Errorf("upstream errors after a client's malformed request = %v, want 0", got)
	}
}

func TestUpstreamErrorsByReason(t *testing.T) {
	m := metrics.New(metrics.Build{})
	// A port nobody listens on: connections are refused.
	dead := testenv.RefusedAddr(t)
	p := startProxy(t, m, dead)
	if got := get(t, p.addr, 2); got["502 "] != 2 {
		t.Fatalf("responses %v, want 2 × 502", got)
	}
	p.waitDone(t, 2)
	if got := value(t, m, "weir_http_upstream_errors_total", map[string]string{"backend": dead, "reason": "refused"}); got != 2 {
		t.Errorf("upstream_errors_total{reason=refused} = %v, want 2", got)
	}
	if got := value(t, m, "weir_http_requests_total", map[string]string{"backend": dead, "code": "5xx"}); got != 2 {
		t.Errorf("requests_total{code=5xx} = %v, want 2", got)
	}
}

// TestExpositionPassesPromtool scrapes the handler in both formats and
// runs Prometheus's own linter on the text.
func TestExpositionPassesPromtool(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "v0.test", Commit: "abc"})
	p := startProxy(t, m, origin(t, "a"))
	get(t, p.addr, 5)
	m.ConfigLoaded(time.Now(), time.Millisecond)
	m.UpgradeDone(metrics.Succeeded)

	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
	srv := &http.Server{Handler: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + l.Addr().String() + "/metrics"

	text := scrape(t, url, "")
	if !strings.Contains(text, `weir_build_info{commit="abc",goversion="go`) {
		t.Errorf("no weir_build_info in:\n%.2000s", text)
	}
	om := scrape(t, url, "application/openmetrics-text;version=1.0.0")
	if !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("OpenMetrics exposition does not end with # EOF")
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testenv.SkipOrFail(t, "promtool (Debian package prometheus) is not installed")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func scrape(t testing.TB, url, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	io.Copy(&buf, resp.Body)
	return buf.String()
}
