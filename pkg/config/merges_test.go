package config

import (
	"maps"
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/l7"
)

// TestMergesWorkEverywhere merges an anchor into each kind of mapping the
// configuration has: the string maps (respond headers, health check
// headers, backend metadata), which used to refuse "<<" as a key that is
// not a string, and the mappings with fixed keys. Explicit keys override
// merged ones, and in a list of merges the first mapping wins, as YAML
// specifies.
func TestMergesWorkEverywhere(t *testing.T) {
	const anchors = `version: 1
x-h: &h {X-A: a, X-B: b}
x-h2: &h2 {X-B: other, X-C: c}
x-up: &up {backends: ["127.0.0.1:9001"], selection: fnv}
x-svc: &svc {kind: respond, listen: ["127.0.0.1:8100"]}
`
	tests := []struct {
		name, services string
		check          func(*Config) (got, want any)
	}{
		{"respond headers", `
  - name: r
    kind: respond
    listen: ["127.0.0.1:8001"]
    headers: {<<: *h, X-B: mine}
`, func(c *Config) (any, any) {
			return c.Services[0].Respond.Headers, map[string]string{"X-A": "a", "X-B": "mine"}
		}},
		{"respond headers, a list of merges", `
  - name: r
    kind: respond
    listen: ["127.0.0.1:8001"]
    headers:
      <<: [*h, *h2]
      X-D: d
`, func(c *Config) (any, any) {
			return c.Services[0].Respond.Headers, map[string]string{"X-A": "a", "X-B": "b", "X-C": "c", "X-D": "d"}
		}},
		{"respond headers, only merged", `
  - name: r
    kind: respond
    listen: ["127.0.0.1:8001"]
    headers: {<<: *h}
`, func(c *Config) (any, any) {
			return c.Services[0].Respond.Headers, map[string]string{"X-A": "a", "X-B": "b"}
		}},
		{"health check headers", `
  - name: p
    kind: http_proxy
    listen: ["127.0.0.1:8001"]
    upstream:
      backends: ["127.0.0.1:9001"]
      health_check: {type: http, headers: {<<: *h2, X-E: e}}
`, func(c *Config) (any, any) {
			return c.Services[0].Upstream.HealthCheck.HTTP.Headers, map[string]string{"X-B": "other", "X-C": "c", "X-E": "e"}
		}},
		{"backend metadata", `
  - name: p
    kind: http_proxy
    listen: ["127.0.0.1:8001"]
    upstream:
      backends:
        - addr: "127.0.0.1:9001"
          metadata: {<<: *h, zone: eu}
`, func(c *Config) (any, any) {
			return c.Services[0].Upstream.Backends[0].Metadata, map[string]string{"X-A": "a", "X-B": "b", "zone": "eu"}
		}},
		{"upstream", `
  - name: p
    kind: http_proxy
    listen: ["127.0.0.1:8001"]
    upstream: {<<: *up, hash_key: uri}
`, func(c *Config) (any, any) {
			u := c.Services[0].Upstream
			return []any{u.Backends[0].Addr, u.Selection, u.HashKey}, []any{"127.0.0.1:9001", SelectFNV, l7.HashKey{Kind: l7.KeyURI}}
		}},
		{"service", `
  - <<: *svc
    name: s
`, func(c *Config) (any, any) {
			s := c.Services[0]
			return []any{s.Name, s.Kind, s.Listeners[0].Addr}, []any{"s", KindRespond, "127.0.0.1:8100"}
		}},
		{"timeouts, health check and discovery", `
  - name: p
    kind: http_proxy
    listen: ["127.0.0.1:8001"]
    upstream:
      discovery: {<<: {type: dns, names: ["app.example:80"]}, refresh: 9s}
      health_check: {<<: {type: tcp, interval: 3s}, timeout: 2s}
      timeouts: {<<: {connect: 1s, read: 5s}, read: 7s}
`, func(c *Config) (any, any) {
			u := c.Services[0].Upstream
			return []any{u.Discovery.Type, u.Discovery.Refresh.String(), u.HealthCheck.Interval.String(), u.HealthCheck.Timeout.String(), u.Timeouts.Connect.String(), u.Timeouts.Read.String()},
				[]any{DiscoveryDNS, "9s", "3s", "2s", "1s", "7s"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("w.yaml", []byte(anchors+"services:"+tt.services))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, want := tt.check(cfg)
			if gm, ok := got.(map[string]string); ok {
				if !maps.Equal(gm, want.(map[string]string)) {
					t.Errorf("got %v, want %v", got, want)
				}
				return
			}
			if g, w := strings.TrimSpace(fmtAny(got)), strings.TrimSpace(fmtAny(want)); g != w {
				t.Errorf("got %s, want %s", g, w)
			}
		})
	}
}

// fmtAny renders a value for comparison.
func fmtAny(v any) string { return dump(v) }
