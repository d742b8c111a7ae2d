package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/dnstest"
	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/admin"
)

// changeDeadline is what the issue promises: a runtime change routes
// requests within 100 ms.
const changeDeadline = 100 * time.Millisecond

// serving builds, binds and serves yaml (after restore, when not nil),
// waits until it serves, and stops it when the test ends.
func serving(t *testing.T, yaml string, log *slog.Logger, restore []byte) *Server {
	t.Helper()
	srv := listenFrom(t, yaml, log)
	if err := srv.Restore(restore); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	serveUntilReady(t, srv)
	return srv
}

// serveUntilReady serves srv, which is listening, until the test ends,
// and returns once it is ready.
func serveUntilReady(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Serve ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server was not ready within 10s")
	}
}

// client sends requests to a proxy and counts the answers.
type client struct {
	t   *testing.T
	url string
	c   *http.Client
}

func newClient(t *testing.T, addr string) *client {
	return &client{t: t, url: "http://" + addr + "/", c: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}}
}

// get sends one request and returns the answering backend's name.
func (c *client) get() string {
	c.t.Helper()
	resp, err := c.c.Get(c.url)
	if err != nil {
		c.t.Fatalf("GET %s: %v", c.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %q %v", c.url, resp.StatusCode, body, err)
	}
	return string(body)
}

// split sends n requests and counts them by backend.
func (c *client) split(n int) map[string]int {
	c.t.Helper()
	got := map[string]int{}
	for range n {
		got[c.get()]++
	}
	return got
}

// within polls until window consecutive requests all satisfy ok, for at
// most changeDeadline after start, and returns how long that took.
func (c *client) within(start time.Time, window int, ok func(string) bool) (time.Duration, bool) {
	c.t.Helper()
	run := 0
	for attempts := 0; attempts < 10_000; attempts++ {
		if ok(c.get()) {
			run++
		} else {
			run = 0
		}
		if run == window {
			return time.Since(start), true
		}
		if time.Since(start) > changeDeadline {
			return time.Since(start), false
		}
	}
	return time.Since(start), false
}

// controlConfig is an http_proxy service "web" balancing round robin over
// backends, a respond service, and when dns is not empty a service "dns"
// discovering its backends through the DNS server at dns.
func controlConfig(t *testing.T, healthCheck, dns string, backends ...string) (yaml, addr string) {
	t.Helper()
	p := freePorts(t, 3)
	addr = fmt.Sprintf("127.0.0.1:%d", p[0])
	quoted := make([]string, len(backends))
	for i, b := range backends {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	yaml = fmt.Sprintf(`
version: 1
services:
  - name: web
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: [%s]
      selection: round_robin
%s
  - name: hello
    kind: respond
    listen: ["127.0.0.1:%d"]
    status: 200
    body: hello
`, addr, strings.Join(quoted, ", "), healthCheck, p[1])
	if dns != "" {
		yaml += fmt.Sprintf(`
  - name: dns
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      discovery: {type: dns, names: ["a.test:%d"], server: %q, refresh: 1h}
`, p[2], p[0], dns)
	}
	return yaml, addr
}

// TestRuntimeControlChangesTheTrafficSplit drains, enables, reweights,
// adds and removes backends of a running server, and checks each change
// in the split of real requests through it: visible within 100 ms, then
// exact over 60 round-robin requests.
func TestRuntimeControlChangesTheTrafficSplit(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *Server, a, b, c string) error
		// settled tells the new routing from the old, one answer at a
		// time; want is the split of 60 requests once settled.
		settled func(name string) bool
		want    map[string]int
	}{
		{"drain", func(s *Server, a, b, c string) error { return s.SetEnabled("web", a, false) },
			func(n string) bool { return n == "b" }, map[string]int{"b": 60}},
		{"drain and enable", func(s *Server, a, b, c string) error {
			return errors.Join(s.SetEnabled("web", a, false), s.SetEnabled("web", a, true))
		}, func(string) bool { return true }, map[string]int{"a": 30, "b": 30}},
		{"weight", func(s *Server, a, b, c string) error { return s.SetWeight("web", a, 3) },
			nil, map[string]int{"a": 45, "b": 15}},
		{"add", func(s *Server, a, b, c string) error { return s.AddBackend("web", c, 1) },
			func(n string) bool { return n == "c" }, map[string]int{"a": 20, "b": 20, "c": 20}},
		{"remove", func(s *Server, a, b, c string) error { return s.RemoveBackend("web", a) },
			func(n string) bool { return n == "b" }, map[string]int{"b": 60}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b, c := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b"), testenv.StartNamedBackend(t, "c")
			yaml, addr := controlConfig(t, "", "", a.Addr, b.Addr)
			srv := serving(t, yaml, nil, nil)
			cl := newClient(t, addr)
			if got := cl.split(4); got["a"] != 2 || got["b"] != 2 {
				t.Fatalf("before the change: %v, want a and b alike", got)
			}
			start := time.Now()
			if err := tc.change(srv, a.Addr, b.Addr, c.Addr); err != nil {
				t.Fatal(err)
			}
			applied := time.Since(start)
			if tc.settled != nil {
				// One answer from the added backend shows it serves; four
				// in a row from the other one that a drained or removed
				// backend does not.
				window := 4
				if tc.name == "add" {
					window = 1
				}
				took, ok := cl.within(start, window, tc.settled)
				if !ok {
					t.Fatalf("the change did not route requests within %v", changeDeadline)
				}
				t.Logf("%s: the call returned after %v; requests followed after %v", tc.name, applied, took)
			}
			// A whole number of round-robin periods: the split is exact.
			got := cl.split(60)
			for name, n := range tc.want {
				if got[name] != n {
					t.Fatalf("60 requests after the change went %v, want %v", got, tc.want)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("60 requests after the change went %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRuntimeControlErrors: every refusal wraps the sentinel the admin
// API maps to its status, and says what was wrong.
func TestRuntimeControlErrors(t *testing.T) {
	a, b := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b")
	dns := dnstest.Start(t, dnstest.Answer, map[string]string{"a.test.": "127.0.0.1"})
	yaml, _ := controlConfig(t, "", dns.Addr, a.Addr, b.Addr)
	srv := serving(t, yaml, nil, nil)
	tests := []struct {
		name string
		err  error
		want error
		text string
	}{
		{"unknown service", srv.SetEnabled("nope", a.Addr, false), admin.ErrUnknownService, `"nope"`},
		{"unknown backend", srv.SetEnabled("web", "127.0.0.1:1", false), admin.ErrUnknownBackend, "127.0.0.1:1"},
		{"unknown backend weight", srv.SetWeight("web", "127.0.0.1:1", 2), admin.ErrUnknownBackend, "127.0.0.1:1"},
		{"bad address", srv.SetEnabled("web", "not an address", false), admin.ErrBadRequest, "not an address"},
		{"weight 0", srv.SetWeight("web", a.Addr, 0), admin.ErrBadRequest, "must be 1 to 10000"},
		{"weight too big", srv.SetWeight("web", a.Addr, 10001), admin.ErrBadRequest, "10001"},
		{"add duplicate", srv.AddBackend("web", a.Addr, 1), admin.ErrBadRequest, "already a backend"},
		{"add bad weight", srv.AddBackend("web", "127.0.0.1:2", -1), admin.ErrBadRequest, "-1"},
		{"remove unknown", srv.RemoveBackend("web", "127.0.0.1:1"), admin.ErrUnknownBackend, "127.0.0.1:1"},
		{"respond has no backends", srv.SetEnabled("hello", a.Addr, false), admin.ErrNotSupported, "kind respond"},
		{"add to DNS", srv.AddBackend("dns", "127.0.0.1:2", 1), admin.ErrNotSupported, "DNS"},
		{"remove from DNS", srv.RemoveBackend("dns", "127.0.0.1:2"), admin.ErrNotSupported, "DNS"},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) || !strings.Contains(fmt.Sprint(tc.err), tc.text) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, tc.err, tc.want, tc.text)
		}
	}
}

// TestRuntimeControlOfDNSBackends: a DNS-discovered backend is drained
// and reweighted like a static one, and a refresh does not undo either.
func TestRuntimeControlOfDNSBackends(t *testing.T) {
	a, b := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b")
	dns := dnstest.Start(t, dnstest.Answer, map[string]string{"a.test.": "127.0.0.1"})
	yaml, _ := controlConfig(t, "", dns.Addr, a.Addr, b.Addr)
	srv := serving(t, yaml, nil, nil)
	st, _ := srv.target("dns")
	be := st.lb.Status()[0].Backend.Addr
	if err := errors.Join(srv.SetWeight("dns", be, 7), srv.SetEnabled("dns", be, false)); err != nil {
		t.Fatal(err)
	}
	if err := st.lb.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := serviceNamed(t, srv.Status(), "dns").Backends[0]
	if got.Weight != 7 || !got.Drained || got.Enabled {
		t.Fatalf("after a refresh: %+v, want weight 7, drained", got)
	}
}

func serviceNamed(t *testing.T, st admin.Status, name string) admin.ServiceStatus {
	t.Helper()
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %q in the status", name)
	return admin.ServiceStatus{}
}

// TestStatusReportsEveryService: kinds, listeners, selection, and each
// backend's weight, health, drain and last check; the L4 service's data
// plane and counters.
func TestStatusReportsEveryService(t *testing.T) {
	a, b := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b")
	b.Down.Store(true)
	yaml, addr := controlConfig(t, "      health_check: {type: http, path: /healthz, interval: 1h}", "", a.Addr, b.Addr)
	l4yaml, tcpVIP, _ := l4Config(t, "userspace", unusablePinPath(t))
	_, services, _ := strings.Cut(l4yaml, "services:\n")
	srv := serving(t, yaml+services, nil, nil)
	if err := srv.SetEnabled("web", a.Addr, false); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetEnabled("web", a.Addr, true); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetWeight("web", a.Addr, 5); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetEnabled("web", b.Addr, false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		httpGetOnce(t, tcpVIP)
	}

	st := srv.Status()
	if st.PID == 0 || st.Started.IsZero() || st.Now.Before(st.Started) {
		t.Fatalf("status header: pid %d, started %v, now %v", st.PID, st.Started, st.Now)
	}
	web := serviceNamed(t, st, "web")
	if web.Kind != "http_proxy" || web.Selection != "round_robin" || len(web.Listeners) != 1 || web.Listeners[0] != addr {
		t.Fatalf("web: %+v", web)
	}
	ba, bb := web.Backends[0], web.Backends[1]
	if ba.Addr != a.Addr || ba.Weight != 5 || !ba.Healthy || !ba.Enabled || ba.Drained || ba.LastCheck.IsZero() || ba.LastError != "" {
		t.Errorf("backend a: %+v", ba)
	}
	if bb.Addr != b.Addr || bb.Healthy || bb.Enabled || !bb.Drained || !strings.Contains(bb.LastError, "503") || bb.LastCheckLatency <= 0 {
		t.Errorf("backend b: %+v", bb)
	}
	if hello := serviceNamed(t, st, "a"); hello.Kind != "respond" || len(hello.Backends) != 0 || hello.Selection != "" {
		t.Errorf("respond service: %+v", hello)
	}
	vip := serviceNamed(t, st, "tcp-vip")
	if vip.Kind != "l4" || vip.DataPlane != "userspace" || vip.Selection != "maglev" || vip.L4 == nil || vip.L4.NewFlows != 3 || vip.L4.Bytes == 0 {
		t.Errorf("l4 service: %+v (counters %+v)", vip, vip.L4)
	}
	if len(vip.Backends) != 2 || vip.Backends[0].L4 == nil {
		t.Errorf("l4 backends: %+v", vip.Backends)
	}
	stats := srv.L4Stats()
	if len(stats) != 2 || stats[0].Service != "tcp-vip" || stats[0].DataPlane != "userspace" || stats[1].Service != "udp-vip" {
		t.Errorf("L4Stats: %+v", stats)
	}
}
