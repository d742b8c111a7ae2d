package config

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/weir-lb/weir/pkg/compress"
)

// TestExamplesParse loads every examples/*.yaml, as a user running weir
// on them would, and checks that none draws a warning.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := Load(file)
			if err != nil {
				t.Fatalf("%s does not load:\n%v", file, err)
			}
			for _, w := range cfg.Warnings {
				t.Errorf("an example should draw no warning: %s", w)
			}
		})
	}
}

// TestQuickstart checks the quick start's promises: a round-robin proxy
// on 127.0.0.1:6188 over a and b plus a dead backend, with a 1s TCP
// check, and a and b answering with their names.
func TestQuickstart(t *testing.T) {
	cfg, err := Load("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]Service)
	for _, s := range cfg.Services {
		byName[s.Name] = s
	}
	lb := byName["lb"]
	if lb.Kind != KindHTTPProxy || len(lb.Listeners) != 1 || lb.Listeners[0].Addr != "127.0.0.1:6188" {
		t.Fatalf("lb: want an http_proxy on 127.0.0.1:6188, got %+v", lb)
	}
	var addrs []string
	for _, b := range lb.Upstream.Backends {
		addrs = append(addrs, b.Addr)
	}
	if want := []string{"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"}; !slices.Equal(addrs, want) {
		t.Errorf("lb backends = %v, want %v", addrs, want)
	}
	if lb.Upstream.Selection != SelectRoundRobin {
		t.Errorf("lb selection = %s, want round_robin", lb.Upstream.Selection)
	}
	if hc := lb.Upstream.HealthCheck; hc == nil || hc.Type != CheckTCP || hc.Interval.Seconds() != 1 {
		t.Errorf("lb health check = %+v, want tcp every 1s", hc)
	}
	for name, addr := range map[string]string{"a": "127.0.0.1:8001", "b": "127.0.0.1:8002"} {
		s := byName[name]
		if s.Kind != KindRespond || len(s.Listeners) != 1 || s.Listeners[0].Addr != addr {
			t.Errorf("%s: want a respond service on %s, got %+v", name, addr, s)
			continue
		}
		if want := "hello from " + name + "\n"; s.Respond.Body != want {
			t.Errorf("%s body = %q, want %q", name, s.Respond.Body, want)
		}
	}
}

// TestRoutingExample checks examples/routing.yaml's promises: three
// named pools, every route parsed with its action, in order.
func TestRoutingExample(t *testing.T) {
	cfg, err := Load("../../examples/routing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Upstreams) != 3 || cfg.Upstreams["web"].Sticky == nil || cfg.Upstreams["web"].Sticky.Cookie != "weir_web" {
		t.Errorf("want pools api, web (sticky, cookie weir_web) and static, got %v", slices.Collect(maps.Keys(cfg.Upstreams)))
	}
	var edge Service
	for _, s := range cfg.Services {
		if s.Name == "edge" {
			edge = s
		}
	}
	var got []string
	for _, r := range edge.Routes {
		action := r.Route.Upstream
		switch {
		case r.Route.Redirect != nil:
			action = "redirect"
		case r.Route.Respond != nil:
			action = "respond"
		}
		got = append(got, r.Route.Name+">"+action)
	}
	want := []string{"bare-domain>redirect", "api-v1>api", "api-v2-canary>api", "assets>static", "site>web"}
	if !slices.Equal(got, want) {
		t.Errorf("edge routes = %v, want %v", got, want)
	}
	if c := edge.Routes[3].Compress; c == nil || !slices.Equal(c.Encodings, compress.DefaultEncodings()) || c.MinSize != compress.DefaultMinSize {
		t.Errorf("assets compress = %+v, want the defaults", c)
	}
}
