package route

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/l7"
)

// FuzzRoute routes arbitrary requests through matchTable and checks that
// routing never panics, that the path it leaves in the request is
// normalised, that a clean path is left where it lay, and that the route
// found is the one a plain reading of the routes, one after the other,
// finds.
func FuzzRoute(f *testing.F) {
	for _, seed := range []struct{ method, host, target, canary string }{
		{"GET", "api.example.com", "/v1/users?id=1", ""},
		{"GET", "API.example.com:80", "/v1/../admin", ""},
		{"POST", "forms.example.com", "/submit/%2e%2E/x", ""},
		{"GET", "a.b.example.com", "//admin//x/./y/..", ""},
		{"GET", "app.example.com", "/docs/?v=2&debug", "1"},
		{"GET", "[::1]:8080", "/static/x.png", ""},
		{"OPTIONS", "api.example.com", "*", ""},
		{"GET", "q.z.example.org.", "/z/%7A/%2F/..", ""},
		{"GET", "x", "http://api.example.com/v1/%2e%2e/%2e%2e", ""},
		{"GET", "", "/..%2f..", ""},
	} {
		f.Add(seed.method, seed.host, seed.target, seed.canary)
	}
	routes := matchRoutes()
	tbl := mustTable(f, routes...)
	f.Fuzz(func(t *testing.T, method, host, target, canary string) {
		if !visible(method) || method == "" || !visible(host) || !visible(target) || !visible(canary) {
			return // the request parsers refuse these
		}
		if target == "" || target[0] != '/' && target != "*" && !strings.Contains(target, "://") {
			target = "/" + target
		}
		s := session(method, target, host, "X-Canary", canary)
		orig := s.Req.Target
		e, tg, err := tbl.find(s)
		origTg := splitTarget(s.Req.Method, orig)
		origPath := origTg.path(orig)
		if err != nil {
			if !errors.Is(err, l7.ErrDownstream) {
				t.Fatalf("%q: error %v is not the client's", target, err)
			}
			if _, ok := normalise(nil, origPath); ok {
				t.Fatalf("%q: refused, but its path does not climb", target)
			}
			return
		}
		path := tg.path(s.Req.Target)
		if tg.hasPath {
			if len(path) == 0 || path[0] != '/' || bytes.Contains(path, []byte("/../")) || bytes.HasSuffix(path, []byte("/..")) ||
				bytes.Contains(path, []byte("//")) || !clean(path) {
				t.Fatalf("%q: path %q is not normalised", target, path)
			}
			if n, _ := normalise(nil, path); !bytes.Equal(n, path) {
				t.Fatalf("%q: normalising %q again gives %q", target, path, n)
			}
			if clean(origPath) && &s.Req.Target[0] != &orig[0] {
				t.Fatalf("%q: a clean path was copied", target)
			}
			if !bytes.Equal(tg.query(s.Req.Target), origTg.query(orig)) || origTg.qmark >= 0 != (tg.qmark >= 0) {
				t.Fatalf("%q: query changed to %q", target, s.Req.Target)
			}
		}
		want := slowMatch(routes, s, tg)
		got := ""
		if e != nil {
			got = e.name
		}
		if got != want {
			t.Fatalf("%s %q host %q: route %q, reading the routes in order gives %q", method, s.Req.Target, host, got, want)
		}
	})
}

func visible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// slowMatch is the first route that takes the request, found by reading
// the routes in order and every condition as documented.
func slowMatch(routes []Route, s *l7.Session, tg target) string {
	host := strings.ToLower(strings.TrimSuffix(string(hostOnly(s.Req.Authority())), "."))
	if len(host) > maxHost {
		host = ""
	}
	path := string(tg.path(s.Req.Target))
	query := tg.query(s.Req.Target)
	for i, r := range routes {
		if len(r.Match.Hosts) > 0 && !slowHost(r.Match.Hosts, host) {
			continue
		}
		v := r.Match.Path.Value
		switch r.Match.Path.Kind {
		case PathExact:
			if !tg.hasPath || path != v {
				continue
			}
		case PathPrefix:
			if !tg.hasPath || !(strings.HasSuffix(v, "/") && strings.HasPrefix(path, v) ||
				path == v || strings.HasPrefix(path, v+"/")) {
				continue
			}
		case PathRegex:
			if !tg.hasPath || !r.Match.Path.Regexp.MatchString(path) {
				continue
			}
		}
		e := &entry{}
		if err := e.compileMatch(&r.Match); err != nil {
			panic(err)
		}
		e.pathRe = nil // checked above
		if !e.holds(&view{method: s.Req.Method, query: query, header: &s.Req.Header}) {
			continue
		}
		if r.Name == "" {
			return string(rune('0' + i))
		}
		return r.Name
	}
	return ""
}

func slowHost(hosts []string, host string) bool {
	for _, h := range hosts {
		h = strings.ToLower(h)
		if sfx, ok := strings.CutPrefix(h, "*"); ok {
			if len(host) > len(sfx) && strings.HasSuffix(host, sfx) && host[len(host)-len(sfx)-1] != '.' {
				return true
			}
		} else if h == host {
			return true
		}
	}
	return false
}
