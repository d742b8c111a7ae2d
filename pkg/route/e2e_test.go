package route_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/route"
	"golang.org/x/net/http2"
)

// seen is what an origin reports of the request it received.
type seen struct {
	Pool, Host, URI           string
	Route, Client, Secret, ID string
}

// startOrigin starts an HTTP origin on loopback that answers with what it
// saw, as JSON, and a Server field for the routes to remove.
func startOrigin(t *testing.T, pool string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "origin")
		w.Header().Set("X-Pool", pool)
		json.NewEncoder(w).Encode(seen{Pool: pool, Host: r.Host, URI: r.RequestURI,
			Route: strings.Join(r.Header.Values("X-Route"), ","), Client: strings.Join(r.Header.Values("X-Client"), ","),
			Secret: r.Header.Get("X-Secret"), ID: r.Header.Get("X-Id")})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// balanced returns a round-robin proxy over the origins at addrs.
func balanced(t *testing.T, addrs ...string) *l7.Balanced {
	t.Helper()
	var backends []lb.Backend
	for _, a := range addrs {
		backends = append(backends, lb.MustBackend(a, 1))
	}
	static, err := lb.NewStatic(backends...)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: static})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &l7.Balanced{LB: pool}
}

// routeRecorder is an Observer that records the route of every request
// by its X-Case header.
type routeRecorder struct {
	mu     sync.Mutex
	routes map[string]string
}

func (r *routeRecorder) ConnOpened()                           {}
func (r *routeRecorder) ConnClosed()                           {}
func (r *routeRecorder) Handshake(*tls.ConnectionState, error) {}
func (r *routeRecorder) StreamOpened()                         {}
func (r *routeRecorder) RequestStarted(*l7.Session)            {}
func (r *routeRecorder) RequestDone(s *l7.Session, _ error) {
	c, _ := s.Req.Header.Get("X-Case")
	r.mu.Lock()
	r.routes[string(c)] = s.Route
	r.mu.Unlock()
}

func tmpl(s string) route.Template { return route.MustTemplate(s) }

// e2eRoutes are three hosts and a wildcard over three pools, with every
// kind of action.
func e2eRoutes(t *testing.T) ([]route.Route, []l7.Proxy) {
	api := balanced(t, startOrigin(t, "api"), startOrigin(t, "api"))
	static := balanced(t, startOrigin(t, "static"))
	web := balanced(t, startOrigin(t, "web"), startOrigin(t, "web"))
	users := regexp.MustCompile(`^/v2/users/([0-9]+)$`)
	routes := []route.Route{
		{Name: "to-https", Match: route.Match{Hosts: []string{"secure.example.com"}},
			Redirect:        &route.Redirect{Scheme: "https", Status: 308},
			ResponseHeaders: route.HeaderRules{Set: []route.HeaderValue{{Name: "X-Redirected-For", Value: tmpl("{client_ip}")}}}},
		{Name: "api-v1", Match: route.Match{Hosts: []string{"api.example.com"}, Path: route.PathMatch{Kind: route.PathPrefix, Value: "/v1"}},
			Upstream: "api", Rewrite: &route.Rewrite{Prefix: "/v1"}, MaxRetries: -1,
			RequestHeaders: route.HeaderRules{
				Remove: []string{"X-Secret"},
				Set:    []route.HeaderValue{{Name: "X-Route", Value: tmpl("api-v1")}},
				Add:    []route.HeaderValue{{Name: "X-Client", Value: tmpl("{client_ip}")}},
			},
			ResponseHeaders: route.HeaderRules{
				Remove: []string{"Server"},
				Set:    []route.HeaderValue{{Name: "X-Upstream-Path", Value: tmpl("{path}")}},
			}},
		{Name: "api-users", Match: route.Match{Hosts: []string{"api.example.com"}, Path: route.PathMatch{Kind: route.PathRegex, Regexp: users}},
			Upstream: "api", Rewrite: &route.Rewrite{Regexp: users, With: "/users/$1"}, MaxRetries: -1},
		{Name: "cdn", Match: route.Match{Hosts: []string{"*.cdn.example.com"}}, Upstream: "static", MaxRetries: -1,
			RequestHeaders: route.HeaderRules{Set: []route.HeaderValue{{Name: "Host", Value: tmpl("origin.cdn.internal")}}}},
		{Name: "moved", Match: route.Match{Hosts: []string{"www.example.com"}, Path: route.PathMatch{Kind: route.PathExact, Value: "/old"}},
			Redirect: &route.Redirect{Path: "/new", Status: 301}},
		{Name: "gone", Match: route.Match{Hosts: []string{"www.example.com"}, Path: route.PathMatch{Kind: route.PathPrefix, Value: "/retired"}},
			Respond:         &route.Respond{Status: 410, Header: textPlain(), Body: []byte("retired\n")},
			ResponseHeaders: route.HeaderRules{Set: []route.HeaderValue{{Name: "X-Asked", Value: tmpl("{scheme}://{host}{path}")}}}},
		{Name: "www", Match: route.Match{Hosts: []string{"www.example.com", "example.com"}}, Upstream: "web", MaxRetries: -1,
			ResponseHeaders: route.HeaderRules{Add: []route.HeaderValue{{Name: "X-Frame-Options", Value: tmpl("DENY")}}}},
		{Name: "health", Match: route.Match{Path: route.PathMatch{Kind: route.PathExact, Value: "/healthz"}},
			Respond: &route.Respond{Status: 200, Body: []byte("ok\n")}},
	}
	proxies := make([]l7.Proxy, len(routes))
	for i, r := range routes {
		switch r.Upstream {
		case "api":
			proxies[i] = api
		case "static":
			proxies[i] = static
		case "web":
			proxies[i] = web
		}
	}
	return routes, proxies
}

func textPlain() h1.Header {
	var h h1.Header
	h.Set("Content-Type", "text/plain")
	return h
}

// startRouted serves tbl on loopback and returns the address.
func startRouted(t *testing.T, srv *l7.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestEndToEnd(t *testing.T) {
	routes, proxies := e2eRoutes(t)
	tbl, err := route.New(routes, proxies)
	if err != nil {
		t.Fatal(err)
	}
	rec := &routeRecorder{routes: map[string]string{}}
	srv := &l7.Server{Proxy: tbl, Observer: rec}
	addr := startRouted(t, srv)

	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	clients := map[string]*http.Client{
		"h1": {Timeout: 5 * time.Second, CheckRedirect: noRedirects, Transport: &http.Transport{}},
		"h2": {Timeout: 5 * time.Second, CheckRedirect: noRedirects, Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}},
	}
	type want struct {
		status int
		seen   *seen             // what the origin saw; nil: no origin
		body   string            // the body, when no origin
		header map[string]string // response fields; "" for absent
		route  string
	}
	tests := []struct {
		name, host, path string
		header           []string
		want             want
	}{
		{"http to https keeps path and query", "secure.example.com", "/a/b?x=1&y=2", nil, want{status: 308,
			header: map[string]string{"Location": "https://secure.example.com/a/b?x=1&y=2", "X-Redirected-For": "127.0.0.1"}, route: "to-https"}},
		{"prefix rewrite and header rules", "api.example.com", "/v1/users?id=7", []string{"X-Secret", "s3cret", "X-Route", "client-set"}, want{status: 200,
			seen:   &seen{Pool: "api", Host: "api.example.com", URI: "/users?id=7", Route: "api-v1", Client: "127.0.0.1"},
			header: map[string]string{"Server": "", "X-Pool": "api", "X-Upstream-Path": "/users"}, route: "api-v1"}},
		{"prefix rewrite of the prefix itself", "API.example.com:80", "/v1", nil, want{status: 200,
			seen: &seen{Pool: "api", Host: "API.example.com:80", URI: "/", Route: "api-v1", Client: "127.0.0.1"}, route: "api-v1"}},
		{"regexp rewrite", "api.example.com", "/v2/users/42?full=1", nil, want{status: 200,
			seen: &seen{Pool: "api", Host: "api.example.com", URI: "/users/42?full=1"}, header: map[string]string{"Server": "origin"}, route: "api-users"}},
		{"api, unknown path", "api.example.com", "/v3", nil, want{status: 404, body: "weir: no route for this request\n"}},
		{"wildcard host, Host rewritten", "img.cdn.example.com", "/logo.png", nil, want{status: 200,
			seen: &seen{Pool: "static", Host: "origin.cdn.internal", URI: "/logo.png"}, route: "cdn"}},
		{"wildcard host, deeper", "a.b.cdn.example.com", "/x", nil, want{status: 200,
			seen: &seen{Pool: "static", Host: "origin.cdn.internal", URI: "/x"}, route: "cdn"}},
		{"wildcard does not take the bare name", "cdn.example.com", "/x", nil, want{status: 404, body: "weir: no route for this request\n"}},
		{"redirect to a new path keeps the query", "www.example.com", "/old?ref=1", nil, want{status: 301,
			header: map[string]string{"Location": "http://www.example.com/new?ref=1"}, route: "moved"}},
		{"fixed response with templated header", "www.example.com", "/retired/page", nil, want{status: 410, body: "retired\n",
			header: map[string]string{"X-Asked": "http://www.example.com/retired/page", "Content-Type": "text/plain"}, route: "gone"}},
		{"second host of a route", "example.com", "/page", nil, want{status: 200,
			seen: &seen{Pool: "web", Host: "example.com", URI: "/page"}, header: map[string]string{"X-Frame-Options": "DENY"}, route: "www"}},
		{"host-less route", "unknown.example", "/healthz", nil, want{status: 200, body: "ok\n", route: "health"}},
		{"no route", "unknown.example", "/nothing", nil, want{status: 404, body: "weir: no route for this request\n"}},
	}
	unmatched := 0
	for proto, client := range clients {
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				req, err := http.NewRequest("GET", "http://"+addr+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = tc.host
				req.Header.Set("X-Case", proto+"/"+tc.name)
				for i := 0; i+1 < len(tc.header); i += 2 {
					req.Header.Set(tc.header[i], tc.header[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]int{"h1": 1, "h2": 2}[proto]; resp.ProtoMajor != want {
					t.Errorf("spoke %s, want HTTP/%d", resp.Proto, want)
				}
				if resp.StatusCode == 404 {
					unmatched++
				}
				if resp.StatusCode != tc.want.status {
					t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.want.status, body)
				}
				if tc.want.seen != nil {
					var got seen
					if err := json.Unmarshal(body, &got); err != nil {
						t.Fatalf("body %q: %v", body, err)
					}
					if got != *tc.want.seen {
						t.Errorf("origin saw %+v, want %+v", got, *tc.want.seen)
					}
				} else if string(body) != tc.want.body {
					t.Errorf("body %q, want %q", body, tc.want.body)
				}
				for name, value := range tc.want.header {
					if got := resp.Header.Get(name); got != value {
						t.Errorf("%s: %q, want %q", name, got, value)
					}
				}
			})
		}
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tbl.Unmatched(); got != uint64(unmatched) || unmatched != 6 {
		t.Errorf("Unmatched() = %d; %d answers were 404, want 6", got, unmatched)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for proto := range clients {
		for _, tc := range tests {
			if got := rec.routes[proto+"/"+tc.name]; got != tc.want.route {
				t.Errorf("%s/%s: Session.Route %q, want %q", proto, tc.name, got, tc.want.route)
			}
		}
	}
}

// rawExchange sends one raw HTTP/1.1 request and returns the status line
// and the body.
func rawExchange(t *testing.T, addr, req string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Status, string(body)
}

// TestEndToEndNormalisation sends paths no well-behaved client library
// sends, on a raw connection.
func TestEndToEndNormalisation(t *testing.T) {
	routes, proxies := e2eRoutes(t)
	tbl, err := route.New(routes, proxies)
	if err != nil {
		t.Fatal(err)
	}
	addr := startRouted(t, &l7.Server{Proxy: tbl})
	tests := []struct {
		target, host string
		status       string
		uri          string // what the origin saw
	}{
		{"/v1/a/../b/%2e/c?q=%2e%2e", "api.example.com", "200 OK", "/b/c?q=%2e%2e"},
		{"//v1//x", "api.example.com", "200 OK", "/x"},
		{"/x/../v1/%75sers", "api.example.com", "200 OK", "/users"},
		{"/v1%2Fx", "api.example.com", "404 Not Found", ""},
		{"/../etc/passwd", "api.example.com", "400 Bad Request", ""},
		{"/v1/%2e%2e/%2e%2e/etc/passwd", "api.example.com", "400 Bad Request", ""},
		{"http://api.example.com/v1/./y", "other.example", "200 OK", "/y"},
	}
	for _, tc := range tests {
		status, body := rawExchange(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
		if status != tc.status {
			t.Errorf("%s: status %q, want %q (body %q)", tc.target, status, tc.status, body)
			continue
		}
		if tc.uri == "" {
			continue
		}
		var got seen
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: body %q: %v", tc.target, body, err)
		}
		if got.URI != tc.uri {
			t.Errorf("%s: origin saw %q, want %q", tc.target, got.URI, tc.uri)
		}
	}
}

// deadFirst is an upstream proxy whose first peer refuses connections and
// whose next one answers.
type deadFirst struct{ dead, live string }

func (d deadFirst) UpstreamPeer(s *l7.Session) (*l7.Peer, error) {
	if len(s.Tried) == 0 {
		return &l7.Peer{Addr: d.dead}, nil
	}
	return &l7.Peer{Addr: d.live}, nil
}

func TestRouteMaxRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // connections to it are refused
	up := deadFirst{dead: dead, live: startOrigin(t, "live")}
	tbl, err := route.New([]route.Route{
		{Name: "server-setting", Match: route.Match{Path: route.PathMatch{Kind: route.PathPrefix, Value: "/retry"}}, Upstream: "u", MaxRetries: -1},
		{Name: "no-retries", Match: route.Match{Path: route.PathMatch{Kind: route.PathPrefix, Value: "/once"}}, Upstream: "u", MaxRetries: 0},
	}, []l7.Proxy{up, up})
	if err != nil {
		t.Fatal(err)
	}
	addr := startRouted(t, &l7.Server{Proxy: tbl, MaxRetries: 1})
	if status, _ := rawExchange(t, addr, "GET /retry HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); status != "200 OK" {
		t.Errorf("route with the server's retries: %s, want 200 OK", status)
	}
	if status, _ := rawExchange(t, addr, "GET /once HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); status != "502 Bad Gateway" {
		t.Errorf("route without retries: %s, want 502 Bad Gateway", status)
	}
}

// countingProxy records which phases the Table delegated to it.
type countingProxy struct {
	l7.Proxy
	mu     sync.Mutex
	phases []string
}

func (c *countingProxy) note(p string) {
	c.mu.Lock()
	c.phases = append(c.phases, p)
	c.mu.Unlock()
}

func (c *countingProxy) NewCtx() any { c.note("ctx"); return c }
func (c *countingProxy) RequestFilter(s *l7.Session) (bool, error) {
	if s.Ctx != c {
		return false, fmt.Errorf("Ctx is %v, not the upstream's", s.Ctx)
	}
	c.note("request:" + string(s.Req.Target))
	return false, nil
}
func (c *countingProxy) UpstreamRequestFilter(s *l7.Session, req *h1.Request) error {
	v, _ := req.Header.Get("X-Route")
	c.note("upstream-request:" + string(v))
	return nil
}
func (c *countingProxy) ResponseFilter(s *l7.Session, resp *h1.Response) error {
	c.note("response")
	resp.Header.Set("X-Pool", "replaced by the pool")
	return nil
}
func (c *countingProxy) Log(s *l7.Session, err error) { c.note("log") }

func TestUpstreamPhasesAreDelegated(t *testing.T) {
	cp := &countingProxy{Proxy: balanced(t, startOrigin(t, "p"))}
	tbl, err := route.New([]route.Route{{
		Match: route.Match{Hosts: []string{"a.example"}}, Upstream: "p", MaxRetries: -1,
		Rewrite:         &route.Rewrite{Prefix: "/in", With: "/out"},
		RequestHeaders:  route.HeaderRules{Set: []route.HeaderValue{{Name: "X-Route", Value: tmpl("set by the route")}}},
		ResponseHeaders: route.HeaderRules{Set: []route.HeaderValue{{Name: "X-Pool", Value: tmpl("the route's")}}},
	}}, []l7.Proxy{cp})
	if err != nil {
		t.Fatal(err)
	}
	srv := &l7.Server{Proxy: tbl}
	addr := startRouted(t, srv)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /in/x HTTP/1.1\r\nHost: a.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if got := resp.Header.Get("X-Pool"); got != "the route's" {
		t.Errorf("X-Pool %q: the route's response rules must run after the pool's filter", got)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx) // Log has run once Shutdown returns
	cp.mu.Lock()
	defer cp.mu.Unlock()
	want := "ctx request:/out/x upstream-request:set by the route response log"
	if got := strings.Join(cp.phases, " "); got != want {
		t.Errorf("phases %q, want %q", got, want)
	}
}

// TestEndToEndConcurrent sends requests that need normalising, rewriting
// and templated header rules on many HTTP/2 streams and HTTP/1.1
// connections at once: each must reach the origin as its own.
func TestEndToEndConcurrent(t *testing.T) {
	routes, proxies := e2eRoutes(t)
	tbl, err := route.New(routes, proxies)
	if err != nil {
		t.Fatal(err)
	}
	addr := startRouted(t, &l7.Server{Proxy: tbl})
	clients := []*http.Client{
		{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}},
		{Timeout: 10 * time.Second, Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}},
	}
	for _, client := range clients {
		var wg sync.WaitGroup
		errs := make(chan error, 16*20)
		for g := range 16 {
			wg.Go(func() {
				for i := range 20 {
					req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v1/u/%d/%d/%s/../x?i=%d", addr, g, i, strings.Repeat("p", i*10+1), i), nil)
					req.Host = "api.example.com"
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					var got seen
					err = json.NewDecoder(resp.Body).Decode(&got)
					resp.Body.Close()
					if want := fmt.Sprintf("/u/%d/%d/x?i=%d", g, i, i); err != nil || got.URI != want || got.Route != "api-v1" {
						errs <- fmt.Errorf("origin saw %+v (%v), want URI %s", got, err, want)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		client.CloseIdleConnections()
	}
}
