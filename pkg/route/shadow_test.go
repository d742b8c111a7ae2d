package route

import (
	"regexp"
	"slices"
	"testing"
)

func regex(re string) PathMatch {
	return PathMatch{Kind: PathRegex, Regexp: regexp.MustCompile(re)}
}

func field(name string, kind ValueKind, v string) FieldMatch {
	f := FieldMatch{Name: name, Kind: kind, Value: v}
	if kind == ValueRegex {
		f.Regexp = regexp.MustCompile(v)
	}
	return f
}

// TestCovers checks, pair by pair, when an earlier route's conditions
// take every request a later route's would.
func TestCovers(t *testing.T) {
	tests := []struct {
		name string
		a, b Match
		want bool
	}{
		{"zero match covers all", Match{}, Match{Hosts: []string{"a.com"}, Path: exact("/x")}, true},
		{"zero match covers zero", Match{}, Match{}, true},
		{"hosts do not cover any host", Match{Hosts: []string{"a.com"}}, Match{}, false},
		{"same exact host", Match{Hosts: []string{"a.com"}}, Match{Hosts: []string{"a.com"}}, true},
		{"host case", Match{Hosts: []string{"A.com"}}, Match{Hosts: []string{"a.COM"}}, true},
		{"other exact host", Match{Hosts: []string{"a.com"}}, Match{Hosts: []string{"b.com"}}, false},
		{"wider host set", Match{Hosts: []string{"a.com", "b.com"}}, Match{Hosts: []string{"b.com"}}, true},
		{"narrower host set", Match{Hosts: []string{"b.com"}}, Match{Hosts: []string{"a.com", "b.com"}}, false},
		{"wildcard covers name under it", Match{Hosts: []string{"*.a.com"}}, Match{Hosts: []string{"x.a.com"}}, true},
		{"wildcard covers deep name", Match{Hosts: []string{"*.a.com"}}, Match{Hosts: []string{"x.y.a.com"}}, true},
		{"wildcard not the bare name", Match{Hosts: []string{"*.a.com"}}, Match{Hosts: []string{"a.com"}}, false},
		{"wildcard not a longer label", Match{Hosts: []string{"*.a.com"}}, Match{Hosts: []string{"xa.com"}}, false},
		{"wildcard covers narrower wildcard", Match{Hosts: []string{"*.a.com"}}, Match{Hosts: []string{"*.x.a.com"}}, true},
		{"wildcard covers itself", Match{Hosts: []string{"*.a.com"}}, Match{Hosts: []string{"*.a.com"}}, true},
		{"narrower wildcard not wider", Match{Hosts: []string{"*.x.a.com"}}, Match{Hosts: []string{"*.a.com"}}, false},
		{"exact name not a wildcard", Match{Hosts: []string{"x.a.com"}}, Match{Hosts: []string{"*.a.com"}}, false},

		{"any path covers exact", Match{}, Match{Path: exact("/a")}, true},
		{"exact does not cover any", Match{Path: exact("/a")}, Match{}, false},
		{"same exact", Match{Path: exact("/a")}, Match{Path: exact("/a")}, true},
		{"other exact", Match{Path: exact("/a")}, Match{Path: exact("/b")}, false},
		{"exact does not cover prefix", Match{Path: exact("/a")}, Match{Path: prefix("/a")}, false},
		{"prefix covers itself", Match{Path: prefix("/api")}, Match{Path: exact("/api")}, true},
		{"slash prefix covers exact below", Match{Path: prefix("/api/")}, Match{Path: exact("/api/v1")}, true},
		{"prefix covers exact under segment", Match{Path: prefix("/api")}, Match{Path: exact("/api/v1")}, true},
		{"prefix not across a segment", Match{Path: prefix("/api")}, Match{Path: exact("/apis")}, false},
		{"prefix covers prefix below", Match{Path: prefix("/api")}, Match{Path: prefix("/api/v1")}, true},
		{"prefix covers slash prefix", Match{Path: prefix("/api")}, Match{Path: prefix("/api/")}, true},
		{"slash prefix not bare", Match{Path: prefix("/api/")}, Match{Path: prefix("/api")}, false},
		{"slash prefix not bare exact", Match{Path: prefix("/api/")}, Match{Path: exact("/api")}, false},
		{"slash prefix covers below", Match{Path: prefix("/api/")}, Match{Path: prefix("/api/v1")}, true},
		{"root prefix covers all paths", Match{Path: prefix("/")}, Match{Path: prefix("/x")}, true},
		{"narrower prefix", Match{Path: prefix("/api/v1")}, Match{Path: prefix("/api")}, false},
		{"prefix does not cover regex", Match{Path: prefix("/")}, Match{Path: regex("^/x")}, false},
		{"same regex", Match{Path: regex("^/x")}, Match{Path: regex("^/x")}, true},
		{"other regex text", Match{Path: regex("^/x")}, Match{Path: regex("^/(x)")}, false},
		{"regex covers exact it matches", Match{Path: regex("^/x")}, Match{Path: exact("/xy")}, true},
		{"regex not exact it misses", Match{Path: regex("^/x$")}, Match{Path: exact("/xy")}, false},
		{"regex does not cover prefix", Match{Path: regex("^/x")}, Match{Path: prefix("/x")}, false},

		{"any method", Match{}, Match{Methods: []string{"GET"}}, true},
		{"methods do not cover any", Match{Methods: []string{"GET"}}, Match{}, false},
		{"wider methods", Match{Methods: []string{"GET", "HEAD"}}, Match{Methods: []string{"HEAD"}}, true},
		{"narrower methods", Match{Methods: []string{"GET"}}, Match{Methods: []string{"GET", "POST"}}, false},

		{"no header conditions", Match{}, Match{Headers: []FieldMatch{field("X", ValueExact, "1")}}, true},
		{"header condition not on b", Match{Headers: []FieldMatch{field("X", ValueExact, "1")}}, Match{}, false},
		{"same header condition", Match{Headers: []FieldMatch{field("x-a", ValueExact, "1")}}, Match{Headers: []FieldMatch{field("X-A", ValueExact, "1")}}, true},
		{"other header value", Match{Headers: []FieldMatch{field("X", ValueExact, "1")}}, Match{Headers: []FieldMatch{field("X", ValueExact, "2")}}, false},
		{"presence implied by value", Match{Headers: []FieldMatch{field("X", ValuePresent, "")}}, Match{Headers: []FieldMatch{field("x", ValueExact, "2")}}, true},
		{"value not implied by presence", Match{Headers: []FieldMatch{field("X", ValueExact, "1")}}, Match{Headers: []FieldMatch{field("X", ValuePresent, "")}}, false},
		{"header subset", Match{Headers: []FieldMatch{field("X", ValueExact, "1")}},
			Match{Headers: []FieldMatch{field("Y", ValuePresent, ""), field("X", ValueExact, "1")}}, true},
		{"header regex same text", Match{Headers: []FieldMatch{field("X", ValueRegex, "^a")}}, Match{Headers: []FieldMatch{field("X", ValueRegex, "^a")}}, true},
		{"header regex matches exact", Match{Headers: []FieldMatch{field("X", ValueRegex, "^a")}}, Match{Headers: []FieldMatch{field("X", ValueExact, "abc")}}, true},
		{"header regex misses exact", Match{Headers: []FieldMatch{field("X", ValueRegex, "^a$")}}, Match{Headers: []FieldMatch{field("X", ValueExact, "abc")}}, false},
		{"query names are case-sensitive", Match{Query: []FieldMatch{field("v", ValueExact, "1")}}, Match{Query: []FieldMatch{field("V", ValueExact, "1")}}, false},
		{"same query", Match{Query: []FieldMatch{field("v", ValueExact, "1")}}, Match{Query: []FieldMatch{field("v", ValueExact, "1")}}, true},

		{"all conditions", Match{Hosts: []string{"*.a.com"}, Path: prefix("/api"), Methods: []string{"GET", "POST"}},
			Match{Hosts: []string{"x.a.com"}, Path: exact("/api/users"), Methods: []string{"GET"}, Headers: []FieldMatch{field("X", ValuePresent, "")}}, true},
		{"one condition fails", Match{Hosts: []string{"*.a.com"}, Path: prefix("/api"), Methods: []string{"GET"}},
			Match{Hosts: []string{"x.a.com"}, Path: exact("/api/users"), Methods: []string{"POST"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := covers(tt.a, tt.b); got != tt.want {
				t.Errorf("covers(%+v, %+v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestUnreachable checks that each shadowed route is reported once,
// with the first earlier route that takes its requests.
func TestUnreachable(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   []Shadow
	}{
		{"none", nil, nil},
		{"ordered narrow to wide", []Route{
			{Match: Match{Path: exact("/a")}},
			{Match: Match{Path: prefix("/")}},
			{},
		}, nil},
		{"catch-all first", []Route{
			{},
			{Match: Match{Path: exact("/a")}},
			{Match: Match{Hosts: []string{"a.com"}}},
		}, []Shadow{{Route: 1, By: 0}, {Route: 2, By: 0}}},
		{"first cover named", []Route{
			{Match: Match{Path: exact("/b")}},
			{Match: Match{Path: prefix("/api")}},
			{Match: Match{Path: prefix("/")}},
			{Match: Match{Path: exact("/api/x")}},
		}, []Shadow{{Route: 3, By: 1}}},
		{"covered only by two together", []Route{
			{Match: Match{Methods: []string{"GET"}}},
			{Match: Match{Methods: []string{"POST"}}},
			{Match: Match{Methods: []string{"GET", "POST"}}},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unreachable(tt.routes); !slices.Equal(got, tt.want) {
				t.Errorf("Unreachable = %v, want %v", got, tt.want)
			}
		})
	}
}
