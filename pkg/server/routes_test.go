package server

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/admin"
	"golang.org/x/net/http2"
)

// echoed is what an echo backend saw of a request, as it answers it.
type echoed struct {
	Backend string              // the backend's name
	Host    string              // Host (or :authority) received
	URI     string              // the request target received
	Header  map[string][]string // every header field received
}

// echoBackend is an HTTP backend on loopback that answers every request
// with what it saw (JSON), and counts the health checks (GET /healthz)
// it is sent apart from the other requests.
type echoBackend struct {
	name     string
	addr     string
	srv      *http.Server
	checks   atomic.Int64
	requests atomic.Int64
}

func startEcho(t *testing.T, name string) *echoBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &echoBackend{name: name, addr: ln.Addr().String()}
	b.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			b.checks.Add(1)
			return
		}
		b.requests.Add(1)
		w.Header().Set("X-Backend-Secret", "s3cret")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Backend: name, Host: r.Host, URI: r.RequestURI, Header: r.Header})
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// answer is one response as a test client received it.
type answer struct {
	proto  int // 1 or 2
	status int
	header http.Header
	body   string
	echo   echoed // when a backend answered
}

// httpClients are an HTTP/1.1 client and an HTTP/2 one (h2c with prior
// knowledge) of a plaintext listener; neither follows redirects.
func httpClients() map[string]*http.Client {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h2 := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return map[string]*http.Client{
		"HTTP/1.1": {Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second, CheckRedirect: noRedirect},
		"HTTP/2":   {Transport: h2, Timeout: 5 * time.Second, CheckRedirect: noRedirect},
	}
}

// send sends method to http://addr+target with Host host and the given
// header fields, and reads the whole answer.
func send(t *testing.T, c *http.Client, method, addr, host, target string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, target, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s (Host %s): reading the body: %v", method, target, host, err)
	}
	a := answer{proto: resp.ProtoMajor, status: resp.StatusCode, header: resp.Header, body: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &a.echo); err != nil {
			t.Fatalf("%s %s: backend answer %q: %v", method, target, body, err)
		}
	}
	return a
}

// routingYAML is one listener routing three hosts and several paths to
// three named pools: redirects, a fixed response, rewrites and header
// rules, with routes named by their index but the first.
func routingYAML(addr, api, web, static string) string {
	return fmt.Sprintf(`version: 1
upstreams:
  api: {backends: [%q]}
  web: {backends: [%q]}
  static: {backends: [%q]}
services:
  - name: edge
    kind: http_proxy
    listen: [%q]
    routes:
      - name: healthz
        match: {path: {exact: /healthz}, method: [GET, HEAD]}
        respond:
          status: 200
          body: "ok\n"
          headers: {Content-Type: text/plain, Cache-Control: no-store}
      - match: {host: secure.example.test}
        redirect: {scheme: https, status: 308}
      - match: {host: [api.example.test, "*.api.example.test"], path: {prefix: /v1}}
        upstream: api
        rewrite: {strip_prefix: /v1}
        request_headers:
          remove: [X-Internal-Token]
          set:
            X-Real-IP: "{client_ip}"
            X-Seen-Host: "{host}"
            X-Seen-Scheme: "{scheme}"
            X-Seen-Id: "{request_id}"
            X-Seen-Path: "{path}"
            X-Replaced: new
          add: {X-Tag: "{{literal}}"}
        response_headers:
          remove: [X-Backend-Secret]
          set: {X-Route: api-v1}
          add: {X-Echo-Id: "{request_id}"}
      - match: {host: api.example.test, path: {regex: "^/v2/"}}
        upstream: api
        rewrite: {regex: "^/v2/(.*)$", with: "/next/$1"}
      - match: {host: "*.cdn.example.test"}
        upstream: static
      - match: {host: www.example.test, path: {prefix: /api}}
        upstream: api
      - match: {host: www.example.test}
        upstream: web
`, api, web, static, addr)
}

// TestRoutingThroughTheConfiguration runs a routed service as a user
// configures it, over HTTP/1.1 and HTTP/2: hosts, wildcards and paths
// reach their pools in first-match order, redirects keep path and query,
// rewrites reach the backend, header rules change both directions, and
// what no route takes is weir's 404.
func TestRoutingThroughTheConfiguration(t *testing.T) {
	api, web, static := startEcho(t, "api"), startEcho(t, "web"), startEcho(t, "static")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	serving(t, routingYAML(addr, api.addr, web.addr, static.addr), nil, nil)

	tests := []struct {
		name, host, target string
		header             map[string]string
		status             int
		backend, uri       string // the backend that answers, and the target it sees
		check              func(t *testing.T, a answer)
	}{
		{name: "respond route, any host", host: "www.example.test", target: "/healthz", status: 200, check: func(t *testing.T, a answer) {
			if a.body != "ok\n" || a.header.Get("Cache-Control") != "no-store" || a.header.Get("Content-Type") != "text/plain" {
				t.Errorf("respond route answered %q, header %v", a.body, a.header)
			}
		}},
		{name: "redirect to https keeps path and query", host: "secure.example.test", target: "/a/b?x=1&y=%20z", status: 308, check: func(t *testing.T, a answer) {
			if got := a.header.Get("Location"); got != "https://secure.example.test/a/b?x=1&y=%20z" {
				t.Errorf("Location %q", got)
			}
		}},
		{name: "strip prefix", host: "api.example.test", target: "/v1/users?q=1", status: 200, backend: "api", uri: "/users?q=1"},
		{name: "strip the whole prefix", host: "api.example.test", target: "/v1", status: 200, backend: "api", uri: "/"},
		{name: "wildcard host", host: "eu.api.example.test", target: "/v1/x", status: 200, backend: "api", uri: "/x"},
		{name: "host case and port ignored", host: "API.Example.TEST:8080", target: "/v1/x", status: 200, backend: "api", uri: "/x"},
		{name: "regex rewrite", host: "api.example.test", target: "/v2/a/b?k=v", status: 200, backend: "api", uri: "/next/a/b?k=v"},
		{name: "prefix on segment boundary only", host: "api.example.test", target: "/v1x", status: 404},
		{name: "wildcard excludes the bare domain", host: "cdn.example.test", target: "/f", status: 404},
		{name: "wildcard cdn", host: "img.cdn.example.test", target: "/f.png", status: 200, backend: "static", uri: "/f.png"},
		{name: "first match wins", host: "www.example.test", target: "/api/orders", status: 200, backend: "api", uri: "/api/orders"},
		{name: "the rest of the site", host: "www.example.test", target: "/index.html?a=b", status: 200, backend: "web", uri: "/index.html?a=b"},
		{name: "unknown host", host: "nowhere.test", target: "/", status: 404},
		{name: "request and response header rules", host: "api.example.test", target: "/v1/h",
			header: map[string]string{"X-Internal-Token": "t", "X-Replaced": "old", "X-Request-Id": "rid-42"},
			status: 200, backend: "api", uri: "/h", check: func(t *testing.T, a answer) {
				h := http.Header(a.echo.Header)
				want := map[string]string{"X-Real-Ip": "127.0.0.1", "X-Seen-Host": "api.example.test", "X-Seen-Scheme": "http",
					"X-Seen-Id": "rid-42", "X-Seen-Path": "/h", "X-Replaced": "new", "X-Tag": "{literal}", "X-Internal-Token": ""}
				for k, v := range want {
					if got := strings.Join(h.Values(k), ","); got != v {
						t.Errorf("backend saw %s: %q, want %q", k, got, v)
					}
				}
				if got := a.header.Values("X-Backend-Secret"); len(got) != 0 {
					t.Errorf("response kept X-Backend-Secret %q", got)
				}
				if a.header.Get("X-Route") != "api-v1" || a.header.Get("X-Echo-Id") != "rid-42" {
					t.Errorf("response header rules: X-Route %q, X-Echo-Id %q", a.header.Get("X-Route"), a.header.Get("X-Echo-Id"))
				}
			}},
		{name: "no response rules on other routes", host: "www.example.test", target: "/", status: 200, backend: "web", uri: "/", check: func(t *testing.T, a answer) {
			if a.header.Get("X-Backend-Secret") != "s3cret" || a.header.Get("X-Route") != "" {
				t.Errorf("web route changed the response: %v", a.header)
			}
		}},
	}
	for proto, c := range httpClients() {
		t.Run(proto, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					a := send(t, c, http.MethodGet, addr, tc.host, tc.target, tc.header)
					if want := map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto]; a.proto != want {
						t.Fatalf("answered over HTTP/%d", a.proto)
					}
					if a.status != tc.status {
						t.Fatalf("status %d, want %d; body %q", a.status, tc.status, a.body)
					}
					if tc.status == 404 && a.body != "weir: no route for this request\n" {
						t.Errorf("404 body %q, want weir's", a.body)
					}
					if a.echo.Backend != tc.backend || a.echo.URI != tc.uri {
						t.Errorf("reached %q with %q, want %q with %q", a.echo.Backend, a.echo.URI, tc.backend, tc.uri)
					}
					if tc.check != nil {
						tc.check(t, a)
					}
				})
			}
		})
	}
}

// TestNamedPoolIsOneLoadBalancer: a pool two services and two routes
// name is one load balancer: one checker probes its backends, a drain
// under the pool's name moves every user's traffic, /status lists it as
// kind pool. The metrics count each route and the unrouted requests,
// and the pool's backends under its name; the access log names the
// route and keeps the target the client sent.
func TestNamedPoolIsOneLoadBalancer(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	p := freePorts(t, 3)
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", p[0])
	one, two := fmt.Sprintf("127.0.0.1:%d", p[1]), fmt.Sprintf("127.0.0.1:%d", p[2])
	accessLog := t.TempDir() + "/access.log"
	// A slow check (the race detector, a busy machine) fails no backend
	// but after five in a row.
	const interval = 200 * time.Millisecond
	observedServer(t, fmt.Sprintf(`version: 1
admin: {listen: "127.0.0.1:%d"}
upstreams:
  shared:
    backends: [%q, %q]
    health_check: {type: http, path: /healthz, interval: %s, timeout: %s, consecutive_failure: 5}
services:
  - name: one
    kind: http_proxy
    listen: [%q]
    access_log: {path: %q, format: json}
    routes:
      - match: {path: {prefix: /x}}
        upstream: shared
        rewrite: {strip_prefix: /x}
      - match: {path: {prefix: /y}}
        upstream: shared
  - name: two
    kind: http_proxy
    listen: [%q]
    upstream: shared
`, p[0], a.addr, b.addr, interval, interval, one, accessLog, two))

	// One checker: over a window of w, a backend sees about w/interval
	// checks, not three times as many (one per user of the pool).
	const window = 2 * time.Second
	before, start := a.checks.Load(), time.Now()
	time.Sleep(window)
	checks, took := a.checks.Load()-before, time.Since(start)
	if limit := int64(took/interval) + 3; checks > limit || checks < 2 {
		t.Errorf("backend a saw %d health checks in %v at an interval of %v, want at most %d (one checker) and some", checks, took, interval, limit)
	}

	c := httpClients()["HTTP/1.1"]
	type sent struct {
		addr, target, uri string
		status            int
	}
	traffic := []sent{
		{one, "/x/a?q=1", "/a?q=1", 200}, {one, "/x/a?q=1", "/a?q=1", 200},
		{one, "/y/b", "/y/b", 200}, {one, "/y/b", "/y/b", 200},
		{one, "/nope", "", 404}, {one, "/x2", "", 404}, {one, "/", "", 404},
		{two, "/z", "/z", 200}, {two, "/z", "/z", 200},
	}
	run := func() (seen map[string]int) {
		seen = map[string]int{}
		for _, s := range traffic {
			got := send(t, c, http.MethodGet, s.addr, "site.test", s.target, nil)
			if got.status != s.status || got.echo.URI != s.uri {
				t.Fatalf("GET %s on %s: %d, backend saw %q; want %d, %q", s.target, s.addr, got.status, got.echo.URI, s.status, s.uri)
			}
			if got.status == 200 {
				seen[got.echo.Backend]++
			}
		}
		return seen
	}
	if got := run(); got["a"] == 0 || got["b"] == 0 {
		t.Fatalf("before the drain the pool's users reached %v, want both backends", got)
	}
	resp, err := http.Post(adminURL+"/api/v1/services/shared/backends/"+a.addr+"/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("drain under the pool's name answered %d", resp.StatusCode)
	}
	aBefore := a.requests.Load()
	if got := run(); got["a"] != 0 || got["b"] != 6 {
		t.Errorf("after draining a, the routes and the service reached %v, want all 6 on b", got)
	}
	if n := a.requests.Load() - aBefore; n != 0 {
		t.Errorf("drained backend a got %d more requests", n)
	}

	var st struct {
		Services []struct {
			Name, Kind string
			Backends   []struct {
				Addr    string
				Drained bool
			}
		}
	}
	getJSON(t, http.DefaultClient, adminURL+"/status", &st)
	kinds := map[string]string{}
	for _, s := range st.Services {
		kinds[s.Name] = s.Kind
		if s.Name == "shared" && (len(s.Backends) != 2 || s.Backends[0].Addr != a.addr || !s.Backends[0].Drained || s.Backends[1].Drained) {
			t.Errorf("status of the pool: %+v, want a drained, b not", s)
		}
	}
	if kinds["shared"] != "pool" || kinds["one"] != "http_proxy" || kinds["two"] != "http_proxy" || len(kinds) != 3 {
		t.Errorf("status lists %v, want the pool (kind pool) and both services", kinds)
	}

	text := get(t, http.DefaultClient, adminURL+"/metrics")
	testenv.Promtool(t, text)
	aTotal, bTotal := a.requests.Load(), b.requests.Load()
	for _, want := range []string{
		`weir_http_route_requests_total{code="2xx",route="0",service="one"} 4`,
		`weir_http_route_requests_total{code="2xx",route="1",service="one"} 4`,
		`weir_http_route_request_duration_seconds_count{route="0",service="one"} 4`,
		`weir_http_route_request_duration_seconds_count{route="1",service="one"} 4`,
		`weir_http_unrouted_requests_total{service="one"} 6`,
		fmt.Sprintf(`weir_http_requests_total{backend=%q,code="2xx",service="shared"} %d`, a.addr, aTotal),
		fmt.Sprintf(`weir_http_requests_total{backend=%q,code="2xx",service="shared"} %d`, b.addr, bTotal),
		fmt.Sprintf(`weir_backend_enabled{backend=%q,service="shared"} 0`, a.addr),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s; have:\n%s", want, grepLines(text, "weir_http_r")+"\n"+grepLines(text, "weir_http_un")+"\n"+grepLines(text, "weir_http_requests_total"))
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "weir_http_requests_total{") && (strings.Contains(l, `service="one"`) || strings.Contains(l, `service="two"`)) && !strings.Contains(l, `backend=""`) {
			t.Errorf("a backend series under a service's name, not the pool's: %s", l)
		}
	}

	// (backend="" under a service counts what no backend answered.)

	// Service one logged 14 requests; each routed line names its route
	// and the target as the client sent it.
	lines := waitLines(t, accessLog, 14)
	routes := map[string]int{}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		route, _ := rec["route"].(string)
		path, _ := rec["path"].(string)
		routes[route]++
		wantPath := map[string]string{"0": "/x/a?q=1", "1": "/y/b"}[route]
		if _, has := rec["route"]; !has {
			t.Errorf("access log line without route: %s", line)
		}
		if wantPath != "" && path != wantPath {
			t.Errorf("route %s logged path %q, want the client's %q", route, path, wantPath)
		}
	}
	if routes["0"] != 4 || routes["1"] != 4 || routes[""] != 6 {
		t.Errorf("access log lines by route %v, want 4 each for 0 and 1 and 6 unrouted", routes)
	}
}

// TestStickyCookieAcrossABackendFailure: a sticky pool's cookie keeps a
// client on one backend for many requests; once that backend is drained,
// or stopped (and its health check fails), the client is re-balanced
// without an error and given a cookie naming its new backend.
func TestStickyCookieAcrossABackendFailure(t *testing.T) {
	for _, failure := range []string{"drained", "stopped"} {
		t.Run(failure, func(t *testing.T) {
			backends := map[string]*echoBackend{}
			var addrs []string
			for _, name := range []string{"a", "b", "c"} {
				b := startEcho(t, name)
				backends[name] = b
				addrs = append(addrs, fmt.Sprintf("%q", b.addr))
			}
			addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
			srv := serving(t, fmt.Sprintf(`version: 1
upstreams:
  app:
    backends: [%s]
    sticky: {cookie: weir_s, ttl: 1h}
    health_check: {type: http, path: /healthz, interval: 100ms, timeout: 100ms, consecutive_failure: 3}
services:
  - name: web
    kind: http_proxy
    listen: [%q]
    routes:
      - upstream: app
`, strings.Join(addrs, ", "), addr), nil, nil)
			c := httpClients()["HTTP/1.1"]
			get := func(cookie string) (backend, setCookie string) {
				t.Helper()
				var h map[string]string
				if cookie != "" {
					h = map[string]string{"Cookie": "other=1; weir_s=" + cookie}
				}
				a := send(t, c, http.MethodGet, addr, "app.test", "/", h)
				if a.status != 200 {
					t.Fatalf("status %d %q", a.status, a.body)
				}
				for _, sc := range (&http.Response{Header: a.header}).Cookies() {
					if sc.Name == "weir_s" {
						if sc.MaxAge != 3600 || !sc.HttpOnly || sc.Path != "/" {
							t.Errorf("cookie %+v, want Max-Age 3600, HttpOnly, Path /", sc)
						}
						setCookie = sc.Value
					}
				}
				return a.echo.Backend, setCookie
			}

			first, cookie := get("")
			if cookie == "" {
				t.Fatal("the first response set no weir_s cookie")
			}
			for i := range 30 {
				if got, set := get(cookie); got != first || set != "" {
					t.Fatalf("request %d with the cookie went to %q (set %q), want %q and no new cookie", i, got, set, first)
				}
			}

			switch failure {
			case "drained":
				if err := srv.SetEnabled("app", backends[first].addr, false); err != nil {
					t.Fatal(err)
				}
			case "stopped":
				backends[first].srv.Close()
			}
			// Every answer is a 200 from some backend; within 5 s one comes
			// from another backend, with a new cookie naming it.
			var next, newCookie string
			deadline := time.Now().Add(5 * time.Second)
			for attempts := 0; ; attempts++ {
				got, set := get(cookie)
				if got != first {
					next, newCookie = got, set
					break
				}
				if time.Now().After(deadline) || attempts > 10_000 {
					t.Fatalf("requests with the old cookie still reach %s %v after the failure", first, time.Since(deadline.Add(-5*time.Second)))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if newCookie == "" || newCookie == cookie {
				t.Fatalf("re-balanced to %s with cookie %q, want a new one (old %q)", next, newCookie, cookie)
			}
			for i := range 30 {
				if got, set := get(newCookie); got != next || set != "" {
					t.Fatalf("request %d with the new cookie went to %q (set %q), want %q", i, got, set, next)
				}
			}
		})
	}
}

// TestCompressionOnARoute: a route with compress: {} compresses a body
// above min_size of a compressible type in the encoding the client
// prefers among those it accepts (zstd, br, gzip in weir's order), and
// leaves alone what a client does not accept, small bodies, other types
// and other routes. Every body decodes to what the backend sent.
func TestCompressionOnARoute(t *testing.T) {
	big := strings.Repeat("weir compresses text bodies on the fly. ", 200) // 8 KiB
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ctype := big, "text/plain; charset=utf-8"
		switch strings.TrimPrefix(r.URL.Path, "/c") {
		case "/small":
			body = "short"
		case "/png":
			ctype = "image/png"
		}
		w.Header().Set("Content-Type", ctype)
		io.WriteString(w, body)
	})}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	serving(t, fmt.Sprintf(`version: 1
upstreams:
  files: {backends: [%q]}
services:
  - name: web
    kind: http_proxy
    listen: [%q]
    routes:
      - match: {path: {prefix: /c}}
        upstream: files
        compress: {}
      - upstream: files
`, ln.Addr(), addr), nil, nil)

	tests := []struct {
		path, accept, want string // want: the Content-Encoding chosen, "" for none
		body               string
	}{
		{"/c/big", "gzip", "gzip", big},
		{"/c/big", "br", "br", big},
		{"/c/big", "zstd", "zstd", big},
		{"/c/big", "gzip, deflate, br, zstd", "zstd", big},
		{"/c/big", "gzip, br", "br", big},
		{"/c/big", "zstd;q=0, br;q=0, gzip", "gzip", big},
		{"/c/big", "", "", big},
		{"/c/big", "identity", "", big},
		{"/c/big", "deflate", "", big},
		{"/c/small", "gzip, br, zstd", "", "short"},
		{"/c/png", "gzip, br, zstd", "", big},
		{"/big", "gzip, br, zstd", "", big},
	}
	for proto, c := range httpClients() {
		if tr, ok := c.Transport.(*http.Transport); ok {
			tr.DisableCompression = true
		} else {
			c.Transport.(*http2.Transport).DisableCompression = true
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s %s %q", proto, tc.path, tc.accept), func(t *testing.T) {
				h := map[string]string{}
				if tc.accept != "" {
					h["Accept-Encoding"] = tc.accept
				}
				a := send(t, c, http.MethodGet, addr, "files.test", tc.path, h)
				if a.status != 200 {
					t.Fatalf("status %d", a.status)
				}
				if got := a.header.Get("Content-Encoding"); got != tc.want {
					t.Fatalf("Content-Encoding %q, want %q", got, tc.want)
				}
				if ct := a.header.Get("Content-Type"); tc.path != "/c/png" && ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if tc.want != "" && !strings.Contains(strings.Join(a.header.Values("Vary"), ","), "Accept-Encoding") {
					t.Errorf("compressed response without Vary: Accept-Encoding: %v", a.header)
				}
				got := decode(t, tc.want, a.body)
				if got != tc.body {
					t.Fatalf("decoded %d bytes, want the backend's %d", len(got), len(tc.body))
				}
				if tc.want != "" && len(a.body) >= len(tc.body)/2 {
					t.Errorf("%s sent %d bytes for %d", tc.want, len(a.body), len(tc.body))
				}
			})
		}
	}
}

// decode undoes a Content-Encoding.
func decode(t *testing.T, encoding, body string) string {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	switch encoding {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown encoding %q", encoding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return string(out)
}

// TestForwardedHeadersFollowTheRoutesPool: forwarded_headers is a pool's
// key, so a route to a pool with forwarded_headers: false leaves the
// client's X-Forwarded-* fields as they came, while a route to another
// pool of the same service sets them.
func TestForwardedHeadersFollowTheRoutesPool(t *testing.T) {
	quiet, loud := startEcho(t, "quiet"), startEcho(t, "loud")
	p := freePorts(t, 2)
	routed, plain := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1])
	serving(t, fmt.Sprintf(`version: 1
upstreams:
  quiet: {backends: [%q], forwarded_headers: false}
  loud: {backends: [%q]}
services:
  - name: routed
    kind: http_proxy
    listen: [%q]
    routes:
      - match: {path: {prefix: /quiet}}
        upstream: quiet
      - upstream: loud
  - name: plain
    kind: http_proxy
    listen: [%q]
    upstream: quiet
`, quiet.addr, loud.addr, routed, plain), nil, nil)
	tests := []struct {
		addr, target, backend string
		xff, proto, host      string
	}{
		{routed, "/quiet", "quiet", "203.0.113.9", "", ""},
		{routed, "/other", "loud", "203.0.113.9, 127.0.0.1", "http", "site.test"},
		{plain, "/quiet", "quiet", "203.0.113.9", "", ""},
	}
	for proto, c := range httpClients() {
		for _, tc := range tests {
			a := send(t, c, http.MethodGet, tc.addr, "site.test", tc.target, map[string]string{"X-Forwarded-For": "203.0.113.9"})
			h := http.Header(a.echo.Header)
			if a.echo.Backend != tc.backend || h.Get("X-Forwarded-For") != tc.xff || h.Get("X-Forwarded-Proto") != tc.proto || h.Get("X-Forwarded-Host") != tc.host {
				t.Errorf("%s %s on %s reached %q with X-Forwarded-For %q, -Proto %q, -Host %q; want %q with %q, %q, %q", proto, tc.target, tc.addr,
					a.echo.Backend, h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"), tc.backend, tc.xff, tc.proto, tc.host)
			}
		}
	}
}

// selfSigned writes a self-signed certificate for name and its key to
// dir, and returns their paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// TestRoutingOverTLS: on a TLS listener, HTTP/1.1 and HTTP/2 (ALPN h2)
// clients are routed alike, {scheme} and X-Forwarded-Proto say https,
// and a redirect keeps the scheme unless it sets one.
func TestRoutingOverTLS(t *testing.T) {
	api := startEcho(t, "api")
	certFile, keyFile, roots := selfSigned(t, t.TempDir(), "api.example.test")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	serving(t, fmt.Sprintf(`version: 1
upstreams:
  api: {backends: [%q]}
services:
  - name: edge
    kind: http_proxy
    listen:
      - addr: %q
        tls: {certs: [{cert: %q, key: %q}]}
    routes:
      - match: {path: {prefix: /old}}
        redirect: {path: /new, status: 302}
      - match: {path: {prefix: /v1}}
        upstream: api
        rewrite: {strip_prefix: /v1}
        request_headers: {set: {X-Seen-Scheme: "{scheme}"}}
`, api.addr, addr, certFile, keyFile), nil, nil)
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		name  string
		proto int
		alpn  []string
	}{{"HTTP/1.1", 1, []string{"http/1.1"}}, {"HTTP/2", 2, []string{"h2"}}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "api.example.test", NextProtos: tc.alpn}}
			if tc.proto == 2 {
				if err := http2.ConfigureTransport(tr); err != nil {
					t.Fatal(err)
				}
			}
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: noRedirect}
			req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/v1/x?y=1", nil)
			req.Host = "api.example.test"
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e echoed
			err = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if err != nil || resp.ProtoMajor != tc.proto || e.URI != "/x?y=1" {
				t.Fatalf("HTTP/%d, backend saw %q (%v); want HTTP/%d and /x?y=1", resp.ProtoMajor, e.URI, err, tc.proto)
			}
			h := http.Header(e.Header)
			if h.Get("X-Seen-Scheme") != "https" || h.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("backend saw {scheme} %q and X-Forwarded-Proto %q, want https", h.Get("X-Seen-Scheme"), h.Get("X-Forwarded-Proto"))
			}
			req, _ = http.NewRequest(http.MethodGet, "https://"+addr+"/old/a?b=c", nil)
			req.Host = "api.example.test"
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "https://api.example.test/new?b=c" {
				t.Errorf("redirect %d to %q, want 302 to https://api.example.test/new?b=c", resp.StatusCode, loc)
			}
		})
	}
}

// TestControlOfARoutedServiceNamesItsPools: a routed service's backends
// belong to its pools, so runtime control under the service's name is
// refused with the pools' names to use instead.
func TestControlOfARoutedServiceNamesItsPools(t *testing.T) {
	a := startEcho(t, "a")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	srv := serving(t, fmt.Sprintf(`version: 1
upstreams:
  api: {backends: [%q]}
  web: {backends: [%q]}
services:
  - name: edge
    kind: http_proxy
    listen: [%q]
    routes:
      - {match: {path: {prefix: /api}}, upstream: api}
      - upstream: web
`, a.addr, a.addr, addr), nil, nil)
	err := srv.SetEnabled("edge", a.addr, false)
	if !errors.Is(err, admin.ErrNotSupported) || !strings.Contains(fmt.Sprint(err), `"api", "web"`) {
		t.Fatalf("drain under a routed service's name: %v, want ErrNotSupported naming pools \"api\", \"web\"", err)
	}
	if err := srv.SetEnabled("api", a.addr, false); err != nil {
		t.Fatalf("drain under the pool's name: %v", err)
	}
}

// TestRoutingHostileRequests sends requests crafted to slip past routes
// to a routed service, on raw connections: dot segments and encoded dots
// are resolved before matching (and the backend sees the resolved path),
// an absolute-form target routes by its own authority, and smuggling
// attempts are refused before any route runs.
func TestRoutingHostileRequests(t *testing.T) {
	api, web, static := startEcho(t, "api"), startEcho(t, "web"), startEcho(t, "static")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	serving(t, routingYAML(addr, api.addr, web.addr, static.addr), nil, nil)
	tests := []struct {
		name, raw    string
		status       int
		backend, uri string
	}{
		{"dot-dot out of the prefix", "GET /v1/../secret HTTP/1.1\r\nHost: api.example.test\r\n\r\n", 404, "", ""},
		{"encoded dot-dot out of the prefix", "GET /v1/%2e%2E/secret HTTP/1.1\r\nHost: api.example.test\r\n\r\n", 404, "", ""},
		{"dot segment inside the prefix", "GET /v1/./a/../users HTTP/1.1\r\nHost: api.example.test\r\n\r\n", 200, "api", "/users"},
		{"merged slashes", "GET //v1//users HTTP/1.1\r\nHost: api.example.test\r\n\r\n", 200, "api", "/users"},
		{"absolute form routes by its authority", "GET http://www.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n\r\n", 200, "web", "/x"},
		{"Content-Length and chunked", "POST /v1/u HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "", ""},
		{"two Host fields", "GET /v1/u HTTP/1.1\r\nHost: www.example.test\r\nHost: api.example.test\r\n\r\n", 400, "", ""},
		{"space in the host", "GET /v1/u HTTP/1.1\r\nHost: api.example.test /v1\r\n\r\n", 400, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := api.requests.Load() + web.requests.Load() + static.requests.Load()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e echoed
			if tc.backend != "" {
				if err := json.Unmarshal(body, &e); err != nil {
					t.Fatalf("%d %q: %v", resp.StatusCode, body, err)
				}
			}
			if resp.StatusCode != tc.status || e.Backend != tc.backend || e.URI != tc.uri {
				t.Fatalf("%d from %q seeing %q, want %d from %q seeing %q; body %q", resp.StatusCode, e.Backend, e.URI, tc.status, tc.backend, tc.uri, body)
			}
			after := api.requests.Load() + web.requests.Load() + static.requests.Load()
			if want := int64(map[bool]int{true: 1}[tc.backend != ""]); after-before != want {
				t.Errorf("backends got %d requests, want %d", after-before, want)
			}
		})
	}
}

// TestRouteTimeoutsOverrideThePools: two routes to one pool, one with a
// read timeout shorter than the backend takes to answer: that route's
// request gets a 504 while the other's, under the pool's timeout, waits
// and gets the answer.
func TestRouteTimeoutsOverrideThePools(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slow := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(time.Second):
		}
		io.WriteString(w, "late")
	})}
	go slow.Serve(ln)
	t.Cleanup(func() { slow.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	serving(t, fmt.Sprintf(`version: 1
upstreams:
  slow: {backends: [%q], timeouts: {read: 10s}}
services:
  - name: edge
    kind: http_proxy
    listen: [%q]
    routes:
      - match: {path: {prefix: /hurry}}
        upstream: slow
        timeouts: {read: 100ms}
      - upstream: slow
`, ln.Addr(), addr), nil, nil)
	c := httpClients()["HTTP/1.1"]
	if a := send(t, c, http.MethodGet, addr, "x.test", "/hurry", nil); a.status != http.StatusGatewayTimeout {
		t.Errorf("the route with a 100ms read timeout: %d %q, want 504", a.status, a.body)
	}
	if a := send(t, c, http.MethodGet, addr, "x.test", "/wait", nil); a.status != 200 || a.body != "late" {
		t.Errorf("the route under the pool's 10s: %d %q, want 200 late", a.status, a.body)
	}
}
