package route

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// stub is an upstream proxy for tests that never reach an upstream.
type stub struct{}

func (stub) UpstreamPeer(*l7.Session) (*l7.Peer, error) { return &l7.Peer{Addr: "127.0.0.1:1"}, nil }

// mustTable builds a Table from routes, with a stub proxy for every
// upstream route.
func mustTable(tb testing.TB, routes ...Route) *Table {
	tb.Helper()
	ups := make([]l7.Proxy, len(routes))
	for i, r := range routes {
		if r.Upstream != "" {
			ups[i] = stub{}
		}
	}
	t, err := New(routes, ups)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// session makes a bare Session for a request head; header holds name,
// value pairs.
func session(method, target, host string, header ...string) *l7.Session {
	req := &h1.Request{Method: []byte(method), Target: []byte(target), ContentLength: -1, Minor: 1}
	if host != "" {
		req.Host = []byte(host)
		req.Header.Add("Host", host)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return &l7.Session{Req: req}
}

func prefix(p string) PathMatch { return PathMatch{Kind: PathPrefix, Value: p} }
func exact(p string) PathMatch  { return PathMatch{Kind: PathExact, Value: p} }
func rx(e string) PathMatch     { return PathMatch{Kind: PathRegex, Regexp: regexp.MustCompile(e)} }

func up(name string, m Match) Route {
	return Route{Name: name, Match: m, Upstream: "pool", MaxRetries: -1}
}

// matchTable is the table of TestMatch: every kind of condition, with
// routes of different kinds interleaved so that the order decides.
func matchTable(tb testing.TB) *Table { return mustTable(tb, matchRoutes()...) }

func matchRoutes() []Route {
	hosts := func(h ...string) []string { return h }
	return []Route{
		up("api-v1", Match{Hosts: hosts("api.example.com"), Path: prefix("/v1")}),
		up("wild-admin", Match{Hosts: hosts("*.example.com"), Path: prefix("/admin")}),
		up("api-root", Match{Hosts: hosts("api.example.com"), Path: exact("/")}),
		up("health", Match{Path: exact("/healthz")}),
		up("deep-wild", Match{Hosts: hosts("*.b.example.com"), Path: prefix("/")}),
		up("api-any", Match{Hosts: hosts("API.example.com")}),
		up("images", Match{Path: rx(`\.(png|jpg)$`)}),
		up("post-only", Match{Hosts: hosts("forms.example.com"), Methods: []string{"POST", "PUT"}, Path: prefix("/submit")}),
		up("forms-get", Match{Hosts: hosts("forms.example.com"), Path: prefix("/submit")}),
		up("canary", Match{Hosts: hosts("app.example.com"), Headers: []FieldMatch{{Name: "X-Canary", Kind: ValueExact, Value: "1"}}}),
		up("bots", Match{Hosts: hosts("app.example.com"), Headers: []FieldMatch{{Name: "user-agent", Kind: ValueRegex, Regexp: regexp.MustCompile(`(?i)bot`)}}}),
		up("debug", Match{Hosts: hosts("app.example.com"), Query: []FieldMatch{{Name: "debug"}}}),
		up("v2", Match{Hosts: hosts("app.example.com"), Query: []FieldMatch{{Name: "v", Kind: ValueExact, Value: "2"}}}),
		up("static", Match{Hosts: hosts("app.example.com"), Path: prefix("/static/")}),
		up("docs-index", Match{Hosts: hosts("app.example.com"), Path: exact("/docs/")}),
		up("docs", Match{Hosts: hosts("app.example.com"), Path: prefix("/docs")}),
		up("v6", Match{Hosts: hosts("[::1]")}),
		up("token", Match{Hosts: hosts("app.example.com"), Headers: []FieldMatch{{Name: "Authorization"}}, Path: prefix("/private")}),
		up("both-kinds", Match{Hosts: hosts("z.example.org", "*.z.example.org"), Path: prefix("/z")}),
	}
}

func TestMatch(t *testing.T) {
	tbl := matchTable(t)
	tests := []struct {
		name           string
		method, target string
		host           string
		header         []string
		want           string // route name; "" for no match
		wantTarget     string // the target afterwards, when it changed
		wantErr        bool
	}{
		{name: "exact host, prefix", target: "/v1/users", host: "api.example.com", want: "api-v1"},
		{name: "prefix itself", target: "/v1", host: "api.example.com", want: "api-v1"},
		{name: "prefix with slash", target: "/v1/", host: "api.example.com", want: "api-v1"},
		{name: "prefix only on a segment boundary", target: "/v10", host: "api.example.com", want: "api-any"},
		{name: "paths are case-sensitive", target: "/V1", host: "api.example.com", want: "api-any"},
		{name: "an earlier wildcard beats a later exact host", target: "/admin/x", host: "api.example.com", want: "wild-admin"},
		{name: "exact root", target: "/", host: "api.example.com", want: "api-root"},
		{name: "an earlier host-less route beats a later exact host", target: "/healthz", host: "api.example.com", want: "health"},
		{name: "host-less route, any host", target: "/healthz", host: "unknown.org", want: "health"},
		{name: "host-less route, no host", method: "GET", target: "/healthz", want: "health"},
		{name: "exact path has no trailing slash", target: "/healthz/", host: "unknown.org"},
		{name: "host case and port ignored", target: "/x", host: "API.Example.COM:8443", want: "api-any"},
		{name: "trailing dot ignored", target: "/x", host: "api.example.com.", want: "api-any"},
		{name: "wildcard does not match the bare name", target: "/admin", host: "example.com"},
		{name: "wildcard", target: "/admin", host: "x.example.com", want: "wild-admin"},
		{name: "wildcard, deeper name", target: "/admin/", host: "a.b.example.com", want: "wild-admin"},
		{name: "longer wildcard", target: "/other", host: "a.b.example.com", want: "deep-wild"},
		{name: "longer wildcard, bare", target: "/other", host: "b.example.com"},
		{name: "wildcard needs a label", target: "/admin", host: ".example.com"},
		{name: "wildcard needs a non-empty label", target: "/admin", host: "x..example.com"},
		{name: "exact host before a later regexp", target: "/pic.png", host: "api.example.com", want: "api-any"},
		{name: "regexp", target: "/a/pic.png", host: "unknown.org", want: "images"},
		{name: "regexp sees the path, not the query", target: "/pic.png?x=1", host: "unknown.org", want: "images"},
		{name: "regexp anchored", target: "/pic.pngx", host: "unknown.org"},
		{name: "regexp before a later prefix", target: "/static/x.png", host: "app.example.com", want: "images"},
		{name: "prefix with trailing slash", target: "/static/x.css", host: "app.example.com", want: "static"},
		{name: "prefix with trailing slash, itself", target: "/static/", host: "app.example.com", want: "static"},
		{name: "prefix with trailing slash, not without", target: "/static", host: "app.example.com"},
		{name: "method", method: "POST", target: "/submit", host: "forms.example.com", want: "post-only"},
		{name: "second method", method: "PUT", target: "/submit/x", host: "forms.example.com", want: "post-only"},
		{name: "other method", method: "GET", target: "/submit", host: "forms.example.com", want: "forms-get"},
		{name: "methods are case-sensitive", method: "post", target: "/submit", host: "forms.example.com", want: "forms-get"},
		{name: "header exact", target: "/", host: "app.example.com", header: []string{"X-Canary", "1"}, want: "canary"},
		{name: "header name any case", target: "/", host: "app.example.com", header: []string{"x-CANARY", "1"}, want: "canary"},
		{name: "header value exact", target: "/", host: "app.example.com", header: []string{"X-Canary", "10"}},
		{name: "header any occurrence", target: "/", host: "app.example.com", header: []string{"X-Canary", "0", "X-Canary", "1"}, want: "canary"},
		{name: "header regexp", target: "/", host: "app.example.com", header: []string{"User-Agent", "GoogleBot/2.1"}, want: "bots"},
		{name: "header present", target: "/private/x", host: "app.example.com", header: []string{"Authorization", ""}, want: "token"},
		{name: "header absent", target: "/private/x", host: "app.example.com"},
		{name: "query present", target: "/?debug", host: "app.example.com", want: "debug"},
		{name: "query present with value", target: "/x?a=1&debug=0", host: "app.example.com", want: "debug"},
		{name: "query exact", target: "/?v=2", host: "app.example.com", want: "v2"},
		{name: "query exact, other value", target: "/?v=20", host: "app.example.com"},
		{name: "query names are case-sensitive", target: "/?V=2", host: "app.example.com"},
		{name: "query any occurrence", target: "/?v=1&v=2", host: "app.example.com", want: "v2"},
		{name: "query, empty", target: "/?", host: "app.example.com"},
		{name: "exact with slash before prefix", target: "/docs/", host: "app.example.com", want: "docs-index"},
		{name: "prefix, itself", target: "/docs", host: "app.example.com", want: "docs"},
		{name: "prefix, below", target: "/docs/a/b", host: "app.example.com", want: "docs"},
		{name: "prefix, not a segment", target: "/docsx", host: "app.example.com"},
		{name: "IPv6 host", target: "/x", host: "[::1]:8080", want: "v6"},
		{name: "IPv6 host without port", target: "/x", host: "[::1]", want: "v6"},
		{name: "route with exact and wildcard hosts, exact", target: "/z", host: "z.example.org", want: "both-kinds"},
		{name: "route with exact and wildcard hosts, wildcard", target: "/z/1", host: "q.z.example.org", want: "both-kinds"},

		// Normalisation.
		{name: "dot-dot", target: "/v1/../admin", host: "api.example.com", want: "wild-admin", wantTarget: "/admin"},
		{name: "dot", target: "/./healthz", host: "x.org", want: "health", wantTarget: "/healthz"},
		{name: "encoded unreserved", target: "/%76%31/x", host: "api.example.com", want: "api-v1", wantTarget: "/v1/x"},
		{name: "encoded dot-dot", target: "/v1/%2e%2E/admin?q=1", host: "api.example.com", want: "wild-admin", wantTarget: "/admin?q=1"},
		{name: "half-encoded dot-dot", target: "/v1/.%2e/admin", host: "api.example.com", want: "wild-admin", wantTarget: "/admin"},
		{name: "double slash", target: "//v1//x", host: "api.example.com", want: "api-v1", wantTarget: "/v1/x"},
		{name: "slashes merge before dot-dot", target: "/v1/x//../y", host: "api.example.com", want: "api-v1", wantTarget: "/v1/y"},
		{name: "trailing dot segment keeps the slash", target: "/v1/x/.", host: "api.example.com", want: "api-v1", wantTarget: "/v1/x/"},
		{name: "encoded slash is not a separator", target: "/v1%2Fx", host: "api.example.com", want: "api-any"},
		{name: "encoded reserved kept", target: "/v1/a%3Fb", host: "api.example.com", want: "api-v1"},
		{name: "climbs above the root", target: "/..", host: "api.example.com", wantErr: true},
		{name: "climbs further down", target: "/v1/../../etc/passwd", host: "api.example.com", wantErr: true},
		{name: "encoded climb", target: "/%2e%2e/x", host: "api.example.com", wantErr: true},
		{name: "dot-dot as a name part", target: "/v1/..a/x", host: "api.example.com", want: "api-v1"},
		{name: "percent not an escape", target: "/v1/%zz/%4", host: "api.example.com", want: "api-v1", wantTarget: "/v1/%25zz/%254"},
		{name: "decoding makes no escape", target: "/v1/%%370", host: "api.example.com", want: "api-v1", wantTarget: "/v1/%2570"},

		// Target forms.
		{name: "absolute-form: authority wins over Host", target: "http://api.example.com/v1/x", host: "unknown.org", want: "api-v1"},
		{name: "absolute-form without path", target: "http://api.example.com", host: "api.example.com", want: "api-root"},
		{name: "absolute-form normalised", target: "http://api.example.com/a/../v1?x", host: "api.example.com", want: "api-v1",
			wantTarget: "http://api.example.com/v1?x"},
		{name: "asterisk: path-less routes only", method: "OPTIONS", target: "*", host: "api.example.com", want: "api-any"},
		{name: "asterisk: no regexp", method: "OPTIONS", target: "*", host: "unknown.org"},

		// Hostile input.
		{name: "overlong host", target: "/healthz", host: strings.Repeat("a", 300) + ".example.com", want: "health"},
		{name: "overlong host, no route", target: "/admin", host: strings.Repeat("a", 300) + ".example.com"},
		{name: "many segments", target: strings.Repeat("/v1", 2000), host: "api.example.com", want: "api-v1"},
		{name: "many dot segments", target: "/v1" + strings.Repeat("/.", 2000), host: "api.example.com", want: "api-v1", wantTarget: "/v1/"},
		{name: "deep climb", target: strings.Repeat("/a", 100) + strings.Repeat("/..", 101), host: "api.example.com", wantErr: true},
		{name: "many query parameters", target: "/?" + strings.Repeat("a=1&", 2000) + "v=2", host: "app.example.com", want: "v2"},
		{name: "host of dots", target: "/admin", host: "....", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			s := session(method, tc.target, tc.host, tc.header...)
			e, _, err := tbl.find(s)
			if tc.wantErr {
				if !errors.Is(err, l7.ErrDownstream) {
					t.Fatalf("err = %v, want a client error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if e != nil {
				got = e.name
			}
			if got != tc.want {
				t.Errorf("route %q, want %q", got, tc.want)
			}
			wantTarget := tc.wantTarget
			if wantTarget == "" {
				wantTarget = tc.target
			}
			if string(s.Req.Target) != wantTarget {
				t.Errorf("target %q, want %q", s.Req.Target, wantTarget)
			}
		})
	}
}

// TestMatchFirstWins builds tables whose routes all match one request,
// in every position, and checks that the first one wins whatever the
// kinds of the others.
func TestMatchFirstWins(t *testing.T) {
	kinds := []Route{
		up("exact-host-prefix", Match{Hosts: []string{"a.example.com"}, Path: prefix("/p")}),
		up("wild-exact", Match{Hosts: []string{"*.example.com"}, Path: exact("/p/q")}),
		up("hostless-prefix", Match{Path: prefix("/p/")}),
		up("hostless-regex", Match{Path: rx(`^/p`)}),
		up("exact-host-any", Match{Hosts: []string{"a.example.com"}}),
		up("wild-regex", Match{Hosts: []string{"*.example.com"}, Path: rx(`q$`)}),
		up("hostless-any", Match{}),
		up("root", Match{Path: prefix("/")}),
	}
	for first := range kinds {
		routes := []Route{kinds[first]}
		for i, r := range kinds {
			if i != first {
				routes = append(routes, r)
			}
		}
		tbl := mustTable(t, routes...)
		e, _, err := tbl.find(session("GET", "/p/q", "a.example.com"))
		if err != nil || e == nil || e.name != kinds[first].Name {
			t.Errorf("first route %q: got %v, %v", kinds[first].Name, e, err)
		}
	}
}

// TestMatchWideNode checks nodes with many children, scanned and, past
// maxKidScan, in a map.
func TestMatchWideNode(t *testing.T) {
	for _, kids := range []int{maxKidScan, maxKidScan + 1, 3 * maxKidScan} {
		var routes []Route
		for i := range kids {
			routes = append(routes, up(fmt.Sprintf("r%d", i), Match{Hosts: []string{"h.example"}, Path: prefix(fmt.Sprintf("/s%d", i))}))
		}
		tbl := mustTable(t, routes...)
		for _, r := range routes {
			e, _, _ := tbl.find(session("GET", r.Match.Path.Value+"/x", "h.example"))
			if e == nil || e.name != r.Name {
				t.Errorf("%d children, %s: got %v", kids, r.Match.Path.Value, e)
			}
		}
		for _, miss := range []string{"/zz", "/s", "/s" + fmt.Sprint(kids)} {
			if e, _, _ := tbl.find(session("GET", miss, "h.example")); e != nil {
				t.Errorf("%d children, %s: got %s", kids, miss, e.name)
			}
		}
	}
}

// TestNames: a route's name is its Name, or its index without one, as
// Session.Route gives it and metrics label it.
func TestNames(t *testing.T) {
	tbl := mustTable(t,
		Route{Name: "api", Upstream: "pool"},
		Route{Upstream: "pool"},
		Route{Name: "0", Respond: &Respond{Status: 204}},
	)
	if got, want := tbl.Names(), []string{"api", "1", "0"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestNewRefuses(t *testing.T) {
	ok := Route{Upstream: "pool", MaxRetries: -1}
	with := func(f func(*Route)) Route {
		r := ok
		f(&r)
		return r
	}
	tests := []struct {
		name  string
		route Route
		proxy l7.Proxy
		want  string
	}{
		{"no action", Route{}, nil, "exactly one of upstream, redirect and respond"},
		{"two actions", with(func(r *Route) { r.Respond = &Respond{Status: 200} }), stub{}, "has 2 actions"},
		{"upstream without proxy", ok, nil, `upstream "pool" has no proxy`},
		{"proxy without upstream", Route{Respond: &Respond{Status: 200}}, stub{}, "has an upstream proxy but no upstream"},
		{"nested table", ok, &Table{}, "tables do not nest"},
		{"redirect status", Route{Redirect: &Redirect{Scheme: "https", Status: 200}}, nil, "status 200 is not a redirect"},
		{"redirect to itself", Route{Redirect: &Redirect{Status: 301}}, nil, "redirect to itself"},
		{"redirect scheme", Route{Redirect: &Redirect{Scheme: "ftp", Status: 301}}, nil, `scheme "ftp"`},
		{"redirect host with port", Route{Redirect: &Redirect{Host: "a.example:80", Status: 301}}, nil, "has a port"},
		{"redirect port", Route{Redirect: &Redirect{Port: 70000, Status: 301}}, nil, "port 70000"},
		{"redirect path", Route{Redirect: &Redirect{Path: "/a?b", Status: 301}}, nil, "is not a path"},
		{"rewrite on redirect", Route{Redirect: &Redirect{Scheme: "https", Status: 301}, Rewrite: &Rewrite{Prefix: "/a"}}, nil, "sends nothing upstream"},
		{"request headers on respond", Route{Respond: &Respond{Status: 200}, RequestHeaders: HeaderRules{Remove: []string{"X"}}}, nil, "sends nothing upstream"},
		{"respond status", Route{Respond: &Respond{Status: 101}}, nil, "status 101"},
		{"respond 204 body", Route{Respond: &Respond{Status: 204, Body: []byte("x")}}, nil, "has no body"},
		{"respond framing header", Route{Respond: &Respond{Status: 200, Header: header("Content-Length", "3")}}, nil, "framing or hop-by-hop"},
		{"host with port", with(func(r *Route) { r.Match.Hosts = []string{"a.example:8080"} }), stub{}, "has a port"},
		{"host star", with(func(r *Route) { r.Match.Hosts = []string{"*"} }), stub{}, "leave hosts out"},
		{"host inner wildcard", with(func(r *Route) { r.Match.Hosts = []string{"a.*.example"} }), stub{}, "whole first label"},
		{"host empty label", with(func(r *Route) { r.Match.Hosts = []string{"a..example"} }), stub{}, "empty label"},
		{"host bad byte", with(func(r *Route) { r.Match.Hosts = []string{"a/b"} }), stub{}, `has '/'`},
		{"host bad IPv6", with(func(r *Route) { r.Match.Hosts = []string{"[::1"} }), stub{}, "bracketed IPv6"},
		{"host IPv6 zone", with(func(r *Route) { r.Match.Hosts = []string{"[fe80::1%eth0]"} }), stub{}, "bracketed IPv6"},
		{"host long label", with(func(r *Route) { r.Match.Hosts = []string{strings.Repeat("a", 64) + ".example"} }), stub{}, "longer than the 63 bytes"},
		{"host label ends with hyphen", with(func(r *Route) { r.Match.Hosts = []string{"*.a-.example"} }), stub{}, `starts or ends with "-"`},
		{"host unbracketed IPv6", with(func(r *Route) { r.Match.Hosts = []string{"2001:db8::1"} }), stub{}, "in brackets"},
		{"redirect host IPv6 zone", Route{Redirect: &Redirect{Host: "[fe80::1%eth0]", Status: 301}}, nil, "bracketed IPv6"},
		{"redirect host label starts with hyphen", Route{Redirect: &Redirect{Host: "-a.example", Status: 301}}, nil, `starts or ends with "-"`},
		{"path without slash", with(func(r *Route) { r.Match.Path = prefix("api") }), stub{}, `"api" is not a path; it must start with "/"`},
		{"path not normalised", with(func(r *Route) { r.Match.Path = prefix("/a/../b") }), stub{}, `write "/b"`},
		{"path double slash", with(func(r *Route) { r.Match.Path = exact("/a//b") }), stub{}, `"/a//b" is not in normal form`},
		{"path with query", with(func(r *Route) { r.Match.Path = exact("/a?b") }), stub{}, "holds a query or fragment"},
		{"path regex without regexp", with(func(r *Route) { r.Match.Path = PathMatch{Kind: PathRegex} }), stub{}, "without a regexp"},
		{"path value without kind", with(func(r *Route) { r.Match.Path = PathMatch{Value: "/a"} }), stub{}, "has no kind"},
		{"method", with(func(r *Route) { r.Match.Methods = []string{"GE T"} }), stub{}, "not a token"},
		{"header name", with(func(r *Route) { r.Match.Headers = []FieldMatch{{Name: "a b"}} }), stub{}, "not a field name"},
		{"header regex", with(func(r *Route) { r.Match.Headers = []FieldMatch{{Name: "A", Kind: ValueRegex}} }), stub{}, "without a regexp"},
		{"query name", with(func(r *Route) { r.Match.Query = []FieldMatch{{Kind: ValueExact, Value: "1"}} }), stub{}, "without a parameter name"},
		{"set content-length", with(func(r *Route) {
			r.RequestHeaders.Set = []HeaderValue{{Name: "Content-Length", Value: MustTemplate("1")}}
		}), stub{}, "framing or hop-by-hop"},
		{"add transfer-encoding", with(func(r *Route) {
			r.ResponseHeaders.Add = []HeaderValue{{Name: "Transfer-Encoding", Value: MustTemplate("chunked")}}
		}), stub{}, "framing or hop-by-hop"},
		{"remove connection", with(func(r *Route) { r.RequestHeaders.Remove = []string{"connection"} }), stub{}, "framing or hop-by-hop"},
		{"remove host", with(func(r *Route) { r.RequestHeaders.Remove = []string{"Host"} }), stub{}, "Host cannot be removed"},
		{"add host", with(func(r *Route) { r.RequestHeaders.Add = []HeaderValue{{Name: "host", Value: MustTemplate("a")}} }), stub{}, "second Host"},
		{"set host to a path", with(func(r *Route) { r.RequestHeaders.Set = []HeaderValue{{Name: "Host", Value: MustTemplate("{path}")}} }), stub{}, "not a host"},
		{"set host to garbage", with(func(r *Route) { r.RequestHeaders.Set = []HeaderValue{{Name: "Host", Value: MustTemplate("a b")}} }), stub{}, "not a host"},
		{"value with CR", with(func(r *Route) { r.ResponseHeaders.Set = []HeaderValue{{Name: "X", Value: MustTemplate("a\rb")}} }), stub{}, "control characters"},
		{"rewrite both", with(func(r *Route) { r.Rewrite = &Rewrite{Prefix: "/a", Regexp: regexp.MustCompile("a")} }), stub{}, "not both"},
		{"rewrite nothing", with(func(r *Route) { r.Rewrite = &Rewrite{With: "/b"} }), stub{}, "give a prefix or a regexp"},
		{"rewrite with", with(func(r *Route) { r.Rewrite = &Rewrite{Prefix: "/a", With: "b"} }), stub{}, "replacement"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]Route{tc.route}, []l7.Proxy{tc.proxy})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "route 0: ") {
				t.Errorf("err = %v: does not name the route", err)
			}
		})
	}
	t.Run("duplicate names", func(t *testing.T) {
		_, err := New([]Route{{Name: "1", Upstream: "a"}, {Upstream: "b"}}, []l7.Proxy{stub{}, stub{}})
		if err == nil || !strings.Contains(err.Error(), "already names route 0") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("count", func(t *testing.T) {
		_, err := New([]Route{ok}, nil)
		if err == nil || !strings.Contains(err.Error(), "1 routes but 0 upstream proxies") {
			t.Fatalf("err = %v", err)
		}
	})
}

func header(kv ...string) h1.Header {
	var h h1.Header
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}
