package l7

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
)

// stickyClient sends GETs through a proxy with an explicit Cookie field,
// as a browser would, and reports who answered and the Set-Cookie fields.
type stickyClient struct {
	c    *http.Client
	addr string
}

func (sc stickyClient) get(t *testing.T, cookie string) (backend string, setCookies []*http.Cookie) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+sc.addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", "theme=dark; "+cookie+"; lang=en")
	}
	resp, err := sc.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, body %q, err %v", resp.StatusCode, body, err)
	}
	for _, line := range resp.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		setCookies = append(setCookies, c)
	}
	return string(body), setCookies
}

// stickyCookie returns the one Set-Cookie named name, failing when there
// is not exactly one.
func stickyCookie(t *testing.T, set []*http.Cookie, name string) *http.Cookie {
	t.Helper()
	if len(set) != 1 || set[0].Name != name {
		t.Fatalf("want one Set-Cookie %s, got %v", name, set)
	}
	return set[0]
}

var stickyIDForm = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestStickySessions follows one client through a pool of three: the
// cookie set on its first response keeps it on one backend; when that
// backend is disabled, fails its health check or stops accepting, the
// client moves to another and is given a cookie naming it.
func TestStickySessions(t *testing.T) {
	backends := map[string]*testenv.NamedBackend{}
	var addrs []string
	for _, name := range []string{"a", "b", "c"} {
		nb := testenv.StartNamedBackend(t, name)
		backends[name] = nb
		addrs = append(addrs, nb.Addr)
	}
	check := &lb.HTTPCheck{Path: "/healthz"}
	t.Cleanup(func() { check.Close() })
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{HealthCheck: check, CheckTimeout: 5 * time.Second}, addrs...)
	pool.CheckHealth(context.Background())
	sticky := &Sticky{Cookie: "wsrv", TTL: time.Hour, HTTPOnly: true, SameSite: http.SameSiteLaxMode}
	sc := stickyClient{c: newClient(), addr: startProxy(t, &Server{Proxy: &Balanced{LB: pool, Sticky: sticky}, MaxRetries: 2})}

	first, set := sc.get(t, "")
	c := stickyCookie(t, set, "wsrv")
	if !stickyIDForm.MatchString(c.Value) {
		t.Errorf("cookie value %q is not 16 hex digits", c.Value)
	}
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		if strings.Contains(c.Value, port) || strings.Contains(c.Raw, host) {
			t.Errorf("cookie %q shows the address %s", c.Raw, a)
		}
	}
	cookie := "wsrv=" + c.Value

	// Honoured over many requests, which round robin alone would spread.
	for i := range 30 {
		got, set := sc.get(t, cookie)
		if got != first || len(set) != 0 {
			t.Fatalf("request %d: served by %s with Set-Cookie %v, want %s and none", i, got, set, first)
		}
	}

	// Each way the backend becomes unusable moves the client, with a new
	// cookie that then holds.
	steps := []struct {
		name  string
		down  func(name string)
		reuse bool // the old cookie is honoured again once the backend is back
		up    func(name string)
	}{
		{"disabled", func(n string) { mustOK(t, pool.SetEnabled(backends[n].Addr, false)) }, true,
			func(n string) { mustOK(t, pool.SetEnabled(backends[n].Addr, true)) }},
		{"health check fails", func(n string) {
			backends[n].Down.Store(true)
			pool.CheckHealth(context.Background())
		}, true, func(n string) {
			backends[n].Down.Store(false)
			pool.CheckHealth(context.Background())
		}},
		{"drained", func(n string) { mustOK(t, pool.SetDrained(backends[n].Addr, true)) }, true,
			func(n string) { mustOK(t, pool.SetDrained(backends[n].Addr, false)) }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.down(first)
			got, set := sc.get(t, cookie)
			if got == first {
				t.Fatalf("served by %s, which is down", got)
			}
			moved := stickyCookie(t, set, "wsrv")
			if moved.Value == c.Value || !stickyIDForm.MatchString(moved.Value) {
				t.Fatalf("new cookie %q, old %q", moved.Value, c.Value)
			}
			for i := range 10 {
				again, set := sc.get(t, "wsrv="+moved.Value)
				if again != got || len(set) != 0 {
					t.Fatalf("request %d after the move: served by %s with %v, want %s and no cookie", i, again, set, got)
				}
			}
			st.up(first)
			back, set := sc.get(t, cookie)
			if back != first || len(set) != 0 {
				t.Fatalf("once %s is back, its cookie brought %s with %v", first, back, set)
			}
		})
	}

	t.Run("unknown cookie", func(t *testing.T) {
		for _, v := range []string{"wsrv=0123456789abcdef", "wsrv=not-an-id", "wsrv=", "wsrv=0123456789ABCDEF"} {
			_, set := sc.get(t, v)
			if got := stickyCookie(t, set, "wsrv"); got.Value == strings.TrimPrefix(v, "wsrv=") {
				t.Errorf("%s: cookie kept", v)
			}
		}
	})

	t.Run("stable across nodes", func(t *testing.T) {
		// Another weir, its own load balancer over the same addresses
		// listed in another order: the same cookie names the same backend.
		rev := []string{addrs[2], addrs[0], addrs[1]}
		other := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, rev...)
		osc := stickyClient{c: newClient(), addr: startProxy(t, &Server{Proxy: &Balanced{LB: other, Sticky: sticky}})}
		for range 5 {
			got, set := osc.get(t, cookie)
			if got != first || len(set) != 0 {
				t.Fatalf("other node: served by %s with %v, want %s", got, set, first)
			}
		}
	})

	t.Run("backend refuses connections", func(t *testing.T) {
		// Still healthy and enabled as far as the pool knows, but gone:
		// the retry may not go back to it, and moves the client.
		dead := testenv.RefusedAddr(t)
		p := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, dead, backends["a"].Addr)
		dsc := stickyClient{c: newClient(), addr: startProxy(t, &Server{Proxy: &Balanced{LB: p, Sticky: sticky}, MaxRetries: 1})}
		deadID := appendStickyID(nil, sticky.id(dead))
		for range 3 {
			got, set := dsc.get(t, "wsrv="+string(deadID))
			if got != "a" || stickyCookie(t, set, "wsrv").Value != string(appendStickyID(nil, sticky.id(backends["a"].Addr))) {
				t.Fatalf("served by %s with %v, want a and a's cookie", got, set)
			}
		}
	})
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStickyCookieAttributes checks the attributes each setting gives.
func TestStickyCookieAttributes(t *testing.T) {
	addr := testenv.Backend(t, "ok")
	tests := []struct {
		name   string
		sticky Sticky
		check  func(t *testing.T, c *http.Cookie)
	}{
		{"session cookie", Sticky{Cookie: "s"}, func(t *testing.T, c *http.Cookie) {
			if c.MaxAge != 0 || !c.Expires.IsZero() || c.Secure || c.HttpOnly || c.SameSite != 0 || c.Path != "/" {
				t.Errorf("want a bare session cookie with Path=/: %q", c.Raw)
			}
		}},
		{"ttl", Sticky{Cookie: "s", TTL: 90 * time.Minute}, func(t *testing.T, c *http.Cookie) {
			if c.MaxAge != 5400 {
				t.Errorf("Max-Age %d, want 5400", c.MaxAge)
			}
			if d := time.Until(c.Expires); d < 89*time.Minute || d > 91*time.Minute {
				t.Errorf("Expires %v is not 90 minutes away", c.Expires)
			}
		}},
		{"secure httponly strict", Sticky{Cookie: "s", Secure: true, HTTPOnly: true, SameSite: http.SameSiteStrictMode},
			func(t *testing.T, c *http.Cookie) {
				if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
					t.Errorf("attributes missing: %q", c.Raw)
				}
			}},
		{"samesite none", Sticky{Cookie: "s", Secure: true, SameSite: http.SameSiteNoneMode}, func(t *testing.T, c *http.Cookie) {
			if c.SameSite != http.SameSiteNoneMode {
				t.Errorf("SameSite: %q", c.Raw)
			}
		}},
		{"secret changes the id", Sticky{Cookie: "s", Secret: []byte("node secret")}, func(t *testing.T, c *http.Cookie) {
			plain := string(appendStickyID(nil, (&Sticky{Cookie: "s"}).id(addr)))
			if c.Value == plain || c.Value != string(appendStickyID(nil, (&Sticky{Cookie: "s", Secret: []byte("node secret")}).id(addr))) {
				t.Errorf("cookie %q: not the keyed id", c.Value)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, addr)
			sc := stickyClient{c: newClient(), addr: startProxy(t, &Server{Proxy: &Balanced{LB: pool, Sticky: &tt.sticky}})}
			_, set := sc.get(t, "")
			c := stickyCookie(t, set, "s")
			if !stickyIDForm.MatchString(c.Value) {
				t.Errorf("value %q", c.Value)
			}
			tt.check(t, c)
		})
	}
}

func TestStickyIDRoundTrip(t *testing.T) {
	for _, id := range []uint64{0, 1, 0xdeadbeef, 1<<64 - 1} {
		got, ok := parseStickyID(appendStickyID(nil, id))
		if !ok || got != id {
			t.Errorf("%x: parsed %x, %v", id, got, ok)
		}
	}
	for _, bad := range []string{"", "0", strings.Repeat("0", 15), strings.Repeat("0", 17), "0123456789abcdeg", "0x23456789abcdef"} {
		if _, ok := parseStickyID([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// BenchmarkStickyRequest is BenchmarkProxiedRequest with sticky sessions
// on and the client's cookie honoured, the common sticky request.
func BenchmarkStickyRequest(b *testing.B) {
	bal := benchBackend(b)
	bal.Sticky = &Sticky{Cookie: "wsrv", TTL: time.Hour}
	id := appendStickyID(nil, bal.Sticky.id(bal.LB.(BackendLister).Current()[0].Addr))
	benchProxied(b, bal, benchRequest+"Cookie: theme=dark; wsrv="+string(id)+"\r\n")
}

// BenchmarkStickyNewCookie measures a sticky request without a cookie:
// balanced as usual, and answered with a Set-Cookie.
func BenchmarkStickyNewCookie(b *testing.B) {
	bal := benchBackend(b)
	bal.Sticky = &Sticky{Cookie: "wsrv", TTL: time.Hour, Secure: true, HTTPOnly: true}
	benchProxied(b, bal, benchRequest)
}
