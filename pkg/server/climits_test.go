package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

// metricValue returns the value of the first series of family name in m
// whose labels include labels, and whether there is one: a gauge's or counter's value, a histogram's
// sample count.
func metricValue(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				return s.GetGauge().GetValue(), true
			case dto.MetricType_COUNTER:
				return s.GetCounter().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(s.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func limitedTotal(t *testing.T, m *metrics.Metrics, service, limit string) float64 {
	t.Helper()
	v, ok := metricValue(t, m, "weir_http_limited_total", map[string]string{"service": service, "limit": limit})
	if !ok {
		t.Fatalf("no weir_http_limited_total{service=%q,limit=%q}", service, limit)
	}
	return v
}

// exchange sends raw on a new connection and returns the response.
func exchange(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	k := dialKeepAlive(t, addr)
	if _, err := io.WriteString(k.c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp
}

// TestClientLimitsFromTheConfiguration runs each limit of a limits:
// mapping from YAML on loopback: the status the client gets and the
// metric that counts it.
func TestClientLimitsFromTheConfiguration(t *testing.T) {
	backend := testenv.StartNamedBackend(t, "a")
	p := freePorts(t, 3)
	rated, bodies, proxied := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1]), fmt.Sprintf("127.0.0.1:%d", p[2])
	clock := lb.NewManualClock(time.Unix(1_800_000_000, 0))
	m := metrics.New(metrics.Build{Version: "test"})
	srv := startFrom(t, fmt.Sprintf(`version: 1
services:
  - name: rated
    kind: http_proxy
    listen: [%q]
    upstream: {backends: [%q]}
    limits:
      rate: {requests: 2, per: 10s}
  - name: bodies
    kind: http_proxy
    listen: [%q]
    upstream: {backends: [%q]}
    limits:
      max_request_body: 16B
      max_header_bytes: 1KiB
      max_headers: 10
  - name: proxied
    kind: respond
    body: ok
    listen:
      - addr: %q
        proxy_protocol: {trusted: [127.0.0.1]}
    limits:
      rate: {requests: 1, per: 1m}
`, rated, backend.Addr, bodies, backend.Addr, proxied), Options{Metrics: m, clock: clock})

	t.Run("rate", func(t *testing.T) {
		k := dialKeepAlive(t, rated)
		for i, want := range []int{200, 200, 429, 429} {
			if i == 3 {
				clock.Advance(2 * time.Second)
			}
			if err := k.send(); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(k.r, nil)
			if err != nil {
				t.Fatalf("request %d: %v (a 429 keeps the connection)", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != want {
				t.Fatalf("request %d: %d, want %d", i, resp.StatusCode, want)
			}
			// One token every 5 s: 5 s to wait, then 3 after 2 s passed.
			if wantRA := map[int]string{2: "5", 3: "3"}[i]; resp.Header.Get("Retry-After") != wantRA {
				t.Errorf("request %d: Retry-After %q, want %q", i, resp.Header.Get("Retry-After"), wantRA)
			}
		}
		if n := limitedTotal(t, m, "rated", "rate"); n != 2 {
			t.Errorf("limited rate = %v, want 2", n)
		}
		if v, _ := metricValue(t, m, "weir_rate_limit_clients", map[string]string{"service": "rated"}); v != 1 {
			t.Errorf("weir_rate_limit_clients = %v, want 1", v)
		}
	})

	t.Run("body and head", func(t *testing.T) {
		tests := []struct {
			limit, raw string
			status     int
		}{
			{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n01234567890123456", 413},
			{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n", 413},
			{"body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n", 413},
			{"", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n0123456789abcdef", 200},
			{"header", "GET / HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 1100) + "\r\n\r\n", 431},
			{"header", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 11) + "\r\n", 431},
		}
		for i, tc := range tests {
			before := map[string]float64{"body": limitedTotal(t, m, "bodies", "body"), "header": limitedTotal(t, m, "bodies", "header")}
			resp := exchange(t, bodies, tc.raw)
			if resp.StatusCode != tc.status {
				t.Errorf("case %d: status %d, want %d", i, resp.StatusCode, tc.status)
			}
			for limit, n := range before {
				want := n
				if limit == tc.limit {
					want++
				}
				if got := limitedTotal(t, m, "bodies", limit); got != want {
					t.Errorf("case %d: limited %s = %v, want %v", i, limit, got, want)
				}
			}
		}
		// The backend was not blamed for the body cut short.
		if v, _ := metricValue(t, m, "weir_http_upstream_errors_total", map[string]string{"service": "bodies", "backend": backend.Addr, "reason": "protocol"}); v != 0 {
			t.Errorf("upstream errors = %v, want 0", v)
		}
	})

	t.Run("the PROXY protocol's client", func(t *testing.T) {
		// Each announced client has its own bucket, though every
		// connection comes from 127.0.0.1.
		for i, tc := range []struct {
			src    string
			status int
		}{{"192.0.2.1", 200}, {"192.0.2.2", 200}, {"192.0.2.1", 429}} {
			raw := fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 %d\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", tc.src, p[2])
			if resp := exchange(t, proxied, raw); resp.StatusCode != tc.status {
				t.Errorf("request %d from %s: %d, want %d", i, tc.src, resp.StatusCode, tc.status)
			}
		}
		if n := limitedTotal(t, m, "proxied", "rate"); n != 1 {
			t.Errorf("limited rate = %v, want 1", n)
		}
	})

	st := srv.Status()
	var got *admin.LimitsStatus
	for _, s := range st.Services {
		if s.Name == "bodies" {
			got = s.Limits
		}
	}
	if got == nil || got.MaxRequestBody != 16 || got.MaxHeaderBytes != 1024 || got.MaxHeaders != 10 || got.Limited["body"] != 3 || got.Limited["header"] != 2 {
		t.Errorf("status of bodies' limits = %+v", got)
	}
}

// TestClientConnectionLimitFromTheConfiguration: a client over
// max_client_connections has its connection closed, counted; after many
// connections opened and closed the count of connected clients returns
// to 0. A listener's max_connections shows as connections in use and
// times found full.
func TestClientConnectionLimitFromTheConfiguration(t *testing.T) {
	p := freePorts(t, 2)
	limited, gated := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1])
	m := metrics.New(metrics.Build{Version: "test"})
	startFrom(t, fmt.Sprintf(`version: 1
services:
  - name: conns
    kind: respond
    body: ok
    listen: [%q]
    limits: {max_client_connections: 2}
  - name: gated
    kind: respond
    body: ok
    listen: [{addr: %q, max_connections: 1}]
`, limited, gated), Options{Metrics: m})
	connected := func() float64 {
		v, _ := metricValue(t, m, "weir_client_connection_limit_clients", map[string]string{"service": "conns"})
		return v
	}

	a, b := dialKeepAlive(t, limited), dialKeepAlive(t, limited)
	for _, k := range []*keepAlive{a, b} {
		if err := k.send(); err != nil {
			t.Fatal(err)
		}
		if body, err := k.read(); err != nil || body != "ok" {
			t.Fatalf("under the limit: %q, %v", body, err)
		}
	}
	c := dialKeepAlive(t, limited)
	c.send()
	if _, err := c.read(); err == nil {
		t.Fatal("a third connection was served")
	}
	if n := limitedTotal(t, m, "conns", "client_connections"); n != 1 {
		t.Errorf("limited client_connections = %v, want 1", n)
	}
	if v := connected(); v != 1 {
		t.Errorf("clients connected = %v, want 1", v)
	}
	a.c.Close()
	b.c.Close()
	for i := range 50 {
		nc, err := net.Dial("tcp", limited)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			fmt.Fprint(nc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, nc)
		}
		nc.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for connected() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("clients connected = %v after every connection closed, want 0", connected())
		}
		time.Sleep(5 * time.Millisecond)
	}

	listener := map[string]string{"service": "gated", "listener": gated}
	first := dialKeepAlive(t, gated)
	first.send()
	if _, err := first.read(); err != nil {
		t.Fatal(err)
	}
	second := dialKeepAlive(t, gated)
	second.send()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if v, _ := metricValue(t, m, "weir_listener_limited_total", listener); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("weir_listener_limited_total stayed 0 with a connection waiting")
		}
	}
	if v, _ := metricValue(t, m, "weir_listener_connections", listener); v != 1 {
		t.Errorf("weir_listener_connections = %v, want 1", v)
	}
	first.c.Close()
	if body, err := second.read(); err != nil || body != "ok" {
		t.Fatalf("the waiting connection after the first closed: %q, %v", body, err)
	}
}

// TestRouteBodyLimitFromTheConfiguration: a route's max_request_body
// replaces the service's for the requests it takes, larger or smaller.
func TestRouteBodyLimitFromTheConfiguration(t *testing.T) {
	backend := testenv.StartNamedBackend(t, "a")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	m := metrics.New(metrics.Build{Version: "test"})
	startFrom(t, fmt.Sprintf(`version: 1
upstreams:
  app: {backends: [%q]}
services:
  - name: site
    kind: http_proxy
    listen: [%q]
    limits: {max_request_body: 10B}
    routes:
      - {match: {path: {prefix: /upload}}, upstream: app, max_request_body: 1KiB}
      - {match: {path: {prefix: /tiny}}, upstream: app, max_request_body: 2}
      - upstream: app
`, backend.Addr, addr), Options{Metrics: m})
	for _, tc := range []struct {
		path   string
		n      int
		status int
	}{
		{"/upload", 1000, 200}, {"/upload", 1025, 413},
		{"/", 10, 200}, {"/", 11, 413},
		{"/tiny", 3, 413},
	} {
		raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", tc.path, tc.n, strings.Repeat("b", tc.n))
		if resp := exchange(t, addr, raw); resp.StatusCode != tc.status {
			t.Errorf("%d bytes to %s: %d, want %d", tc.n, tc.path, resp.StatusCode, tc.status)
		}
	}
	if n := limitedTotal(t, m, "site", "body"); n != 3 {
		t.Errorf("limited body = %v, want 3", n)
	}
}
