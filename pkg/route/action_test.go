package route

import (
	"crypto/tls"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7"
)

func TestTemplateAppendTo(t *testing.T) {
	s := session("GET", "/a/b?q=1", "Shop.Example.com:8443")
	s.Client = netip.MustParseAddrPort("[2001:db8::7]:5555")
	s.RequestID = []byte("abc123")
	tlsOn := session("GET", "http://x.example/p", "ignored.example")
	tlsOn.TLS = &tls.ConnectionState{}
	tlsOn.Client = netip.MustParseAddrPort("10.0.0.1:1")
	tests := []struct {
		tmpl string
		s    *l7.Session
		want string
	}{
		{"plain", s, "plain"},
		{"{client_ip}", s, "2001:db8::7"},
		{"{host}", s, "Shop.Example.com"},
		{"{scheme}://{host}{path}", s, "http://Shop.Example.com/a/b"},
		{"{scheme}://{host}{path}", tlsOn, "https://x.example/p"},
		{"id={request_id};ip={client_ip}", tlsOn, "id=;ip=10.0.0.1"},
		{"{request_id}", s, "abc123"},
		{"{{literal}} {path}", s, "{literal} /a/b"},
		{"", s, ""},
	}
	for _, tc := range tests {
		got := MustTemplate(tc.tmpl).AppendTo([]byte("pre:"), tc.s)
		if string(got) != "pre:"+tc.want {
			t.Errorf("%q: got %q, want %q", tc.tmpl, got, "pre:"+tc.want)
		}
	}
}

func TestRedirectLocation(t *testing.T) {
	tests := []struct {
		name   string
		rd     Redirect
		target string
		host   string
		tls    bool
		want   string
	}{
		{"to https, path and query kept", Redirect{Scheme: "https", Status: 308}, "/a/b?x=1&y=2", "shop.example:8080", false,
			"https://shop.example/a/b?x=1&y=2"},
		{"to https, no query", Redirect{Scheme: "https", Status: 301}, "/", "shop.example", false, "https://shop.example/"},
		{"host kept as sent", Redirect{Scheme: "https", Status: 301}, "/", "Shop.EXAMPLE", false, "https://Shop.EXAMPLE/"},
		{"scheme kept", Redirect{Host: "new.example", Status: 302}, "/p?q", "old.example", true, "https://new.example/p?q"},
		{"port", Redirect{Scheme: "https", Port: 8443, Status: 307}, "/p", "shop.example:8080", false, "https://shop.example:8443/p"},
		{"path replaced, query kept", Redirect{Path: "/new", Status: 301}, "/old?a=1", "shop.example", false, "http://shop.example/new?a=1"},
		{"IPv6 request host", Redirect{Scheme: "https", Status: 301}, "/p", "[2001:db8::1]:80", false, "https://[2001:db8::1]/p"},
		{"IPv6 redirect host", Redirect{Host: "2001:db8::2", Port: 8443, Status: 301}, "/p", "a.example", false, "http://[2001:db8::2]:8443/p"},
		{"absolute-form request", Redirect{Scheme: "https", Status: 301}, "http://abs.example:80/p?q=1", "abs.example", false, "https://abs.example/p?q=1"},
		{"no host: relative", Redirect{Path: "/new", Status: 301}, "/old?q", "", false, "/new?q"},
		{"asterisk", Redirect{Scheme: "https", Status: 301}, "*", "a.example", false, "https://a.example/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd, err := compileRedirect(&tc.rd)
			if err != nil {
				t.Fatal(err)
			}
			method := "GET"
			if tc.target == "*" {
				method = "OPTIONS"
			}
			s := session(method, tc.target, tc.host)
			if tc.tls {
				s.TLS = &tls.ConnectionState{}
			}
			tg := splitTarget(s.Req.Method, s.Req.Target)
			got := rd.location(nil, s, tg.path(s.Req.Target), tg.query(s.Req.Target))
			if string(got) != tc.want {
				t.Errorf("Location %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	tests := []struct {
		rw         Rewrite
		path, want string // want "" for unchanged
	}{
		{Rewrite{Prefix: "/api"}, "/api/users", "/users"},
		{Rewrite{Prefix: "/api"}, "/api", "/"},
		{Rewrite{Prefix: "/api"}, "/api/", "/"},
		{Rewrite{Prefix: "/api"}, "/apis", ""},
		{Rewrite{Prefix: "/api"}, "/other", ""},
		{Rewrite{Prefix: "/api", With: "/v2"}, "/api/users", "/v2/users"},
		{Rewrite{Prefix: "/api", With: "/v2"}, "/api", "/v2"},
		{Rewrite{Prefix: "/api", With: "/v2/"}, "/api/users", "/v2/users"},
		{Rewrite{Prefix: "/api/", With: "/"}, "/api/users", "/users"},
		{Rewrite{Prefix: "/api/", With: "/"}, "/api/", "/"},
		{Rewrite{Prefix: "/api/"}, "/api", ""},
		{Rewrite{Prefix: "/", With: "/app"}, "/x/y", "/app/x/y"},
		{Rewrite{Prefix: "/", With: "/app"}, "/", "/app/"},
		{Rewrite{Regexp: regexp.MustCompile(`^/users/([0-9]+)$`), With: "/user?id=$1"}, "/users/42", "refused"},
		{Rewrite{Regexp: regexp.MustCompile(`^/users/([0-9]+)$`), With: "/user/$1/profile"}, "/users/42", "/user/42/profile"},
		{Rewrite{Regexp: regexp.MustCompile(`^/(?P<lang>[a-z]{2})/(.*)$`), With: "/${2}?"}, "/en/x", "refused"},
		{Rewrite{Regexp: regexp.MustCompile(`^/(?P<lang>[a-z]{2})/(.*)$`), With: "/$2/${lang}"}, "/en/docs/a", "/docs/a/en"},
		{Rewrite{Regexp: regexp.MustCompile(`old`), With: "new"}, "/old/x/old", "/new/x/new"},
		{Rewrite{Regexp: regexp.MustCompile(`^/`), With: ""}, "/x", "/x"},
		{Rewrite{Regexp: regexp.MustCompile(`^/a/`), With: "/../../"}, "/a/b", "climbs"},
		{Rewrite{Regexp: regexp.MustCompile(`^/nomatch`), With: "/x"}, "/a", ""},
	}
	for _, tc := range tests {
		rw, err := compileRewrite(&tc.rw)
		if tc.want == "refused" {
			if err == nil {
				t.Errorf("%+v: accepted", tc.rw)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.rw, err)
			continue
		}
		out, changed, ok := rw.apply(nil, []byte(tc.path))
		switch {
		case tc.want == "climbs":
			if ok {
				t.Errorf("%+v on %q: %q, want a climb refused", tc.rw, tc.path, out)
			}
		case tc.want == "":
			if changed || !ok {
				t.Errorf("%+v on %q: changed to %q", tc.rw, tc.path, out)
			}
		case !changed || string(out) != tc.want:
			t.Errorf("%+v on %q: %q (changed %v), want %q", tc.rw, tc.path, out, changed, tc.want)
		}
	}
}

func TestHeaderRules(t *testing.T) {
	hr := HeaderRules{
		Remove: []string{"X-Drop", "x-set"},
		Set:    []HeaderValue{{Name: "X-Set", Value: MustTemplate("{scheme}:{client_ip}")}, {Name: "X-Const", Value: MustTemplate("c{{1}}")}},
		Add:    []HeaderValue{{Name: "X-Drop", Value: MustTemplate("added")}, {Name: "X-Path", Value: MustTemplate("{path}")}},
	}
	r, err := compileRules(&hr, true)
	if err != nil {
		t.Fatal(err)
	}
	s := session("GET", "/p?q", "h.example", "X-Drop", "1", "X-Set", "old1", "X-Keep", "k", "x-set", "old2", "X-Const", "old", "X-Drop", "2")
	s.Client = netip.MustParseAddrPort("192.0.2.1:9")
	r.apply(&s.Req.Header, s, nil)
	var got []string
	for name, value := range s.Req.Header.All() {
		got = append(got, string(name)+": "+string(value))
	}
	want := []string{"Host: h.example", "X-Keep: k", "X-Const: c{1}", "X-Set: http:192.0.2.1", "X-Drop: added", "X-Path: /p"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("header:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.constant {
		t.Error("rules with variables reported constant")
	}
}

func TestFixedResponseRulesApplyOnce(t *testing.T) {
	tbl := mustTable(t, Route{
		Respond:         &Respond{Status: 503, Header: header("Retry-After", "60", "X-Old", "1"), Body: []byte("down\n")},
		ResponseHeaders: HeaderRules{Remove: []string{"X-Old"}, Add: []HeaderValue{{Name: "Cache-Control", Value: MustTemplate("no-store")}}},
	})
	rs := tbl.entries[0].respond
	if !rs.ready {
		t.Fatal("constant rules not applied at New")
	}
	var got []string
	for name, value := range rs.header.All() {
		got = append(got, string(name)+": "+string(value))
	}
	if strings.Join(got, ", ") != "Retry-After: 60, Cache-Control: no-store" {
		t.Errorf("header %v", got)
	}
}

// TestRoutingAllocatesNothing checks the per-request work of an upstream
// route with a prefix rewrite and templated header rules both ways, on a
// clean path and on one that needs normalising.
func TestRoutingAllocatesNothing(t *testing.T) {
	tbl := mustTable(t, append(benchRoutes(50, 10, false), Route{
		Name: "target", Match: Match{Hosts: []string{"app.example"}, Path: prefix("/api")}, Upstream: "pool", MaxRetries: -1,
		Rewrite: &Rewrite{Prefix: "/api", With: "/v2"},
		RequestHeaders: HeaderRules{
			Remove: []string{"Cookie"},
			Set:    []HeaderValue{{Name: "X-Client", Value: MustTemplate("{client_ip}")}, {Name: "X-Const", Value: MustTemplate("1")}},
			Add:    []HeaderValue{{Name: "X-Path", Value: MustTemplate("{scheme}://{host}{path}")}},
		},
		ResponseHeaders: HeaderRules{Set: []HeaderValue{{Name: "X-Id", Value: MustTemplate("{request_id}")}}},
	})...)
	for _, target := range []string{"/api/users/1?x=1", "/api/./users/../users/1?x=1"} {
		s := session("GET", target, "App.Example:8080")
		s.Client = netip.MustParseAddrPort("192.0.2.7:4000")
		orig := s.Req.Target
		route := func() {
			s.Req.Target = orig
			s.Req.Header.Reset()
			s.Req.Header.Add("Host", "App.Example:8080")
			s.Req.Header.Add("Cookie", "a=1")
			e, tg, err := tbl.find(s)
			if err != nil || e == nil || e.name != "target" {
				t.Fatalf("%s: route %v, %v", target, e, err)
			}
			if err := tbl.rewriteTarget(s, e.rewrite, tg); err != nil {
				t.Fatal(err)
			}
			tbl.applyRules(&e.reqRules, &s.Req.Header, s)
			tbl.applyRules(&e.respRules, &s.Req.Header, s)
		}
		route()
		if got := string(s.Req.Target); got != "/v2/users/1?x=1" {
			t.Fatalf("%s: target %q", target, got)
		}
		if testenv.Race {
			continue // sync.Pool drops items at random under the race detector
		}
		if n := testing.AllocsPerRun(100, route); n != 0 {
			t.Errorf("%s: %.1f allocations per request", target, n)
		}
	}
}
