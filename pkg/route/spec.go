package route

import (
	"regexp"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// Route is one entry of a routing table: which requests it takes and what
// it does with them. A Route is a description; New compiles a list of
// them into a Table. pkg/config parses a service's routes: list straight
// into Routes, so every value has one grammar.
type Route struct {
	// Name labels the route in metrics and the access log. Empty: its
	// position in the list, counted from 0.
	Name string
	// Match says which requests the route takes; the zero Match takes
	// every request.
	Match Match

	// The action: exactly one of Upstream, Redirect and Respond is set.

	// Upstream names the pool that serves the route's requests. New takes
	// the Proxy that selects from it.
	Upstream string
	// Redirect answers with a redirect.
	Redirect *Redirect
	// Respond answers with a fixed response.
	Respond *Respond

	// Rewrite changes the request's path before it goes upstream; nil
	// leaves it.
	Rewrite *Rewrite
	// RequestHeaders change the request sent upstream; ResponseHeaders
	// the response sent to the client (whoever made it, the upstream or
	// a Redirect or Respond action).
	RequestHeaders, ResponseHeaders HeaderRules
	// MaxRetries bounds how many more backends a request that failed to
	// connect may try. Negative: the server's setting.
	MaxRetries int
	// MaxRequestBody bounds the body of a request the route proxies, in
	// bytes (Session.MaxRequestBody); 0: the server's setting.
	MaxRequestBody int64
}

// Match is the conditions a request must meet for a route to take it.
// Every condition given must hold; an empty one holds for every request.
type Match struct {
	// Hosts are the names the request's host must be one of: exact names
	// ("app.example.com") or wildcards ("*.example.com", which matches
	// any name ending in ".example.com" and not the bare "example.com").
	// Lower case; the request's host is compared case-insensitively and
	// without its port.
	Hosts []string
	// Path is the condition on the request's path.
	Path PathMatch
	// Methods are the request methods accepted, upper case as sent.
	Methods []string
	// Headers are conditions on request header fields; all must hold.
	Headers []FieldMatch
	// Query are conditions on query parameters; all must hold.
	Query []FieldMatch
}

// PathKind is how a PathMatch compares a path.
type PathKind uint8

const (
	// PathAny matches every path.
	PathAny PathKind = iota
	// PathExact matches the path Value only.
	PathExact
	// PathPrefix matches Value and every path below it, on segment
	// boundaries: "/api" matches "/api", "/api/" and "/api/v1", not
	// "/apis". A Value ending in "/" matches the paths below it only.
	PathPrefix
	// PathRegex matches paths that Regexp matches (RE2, unanchored unless
	// the expression anchors itself).
	PathRegex
)

// PathMatch is a condition on the request's path: the request target up
// to "?", after normalisation (dot segments removed).
type PathMatch struct {
	Kind   PathKind
	Value  string
	Regexp *regexp.Regexp
}

// ValueKind is how a FieldMatch compares a value.
type ValueKind uint8

const (
	// ValuePresent holds when the field is present, whatever its value.
	ValuePresent ValueKind = iota
	// ValueExact holds when a value equals Value.
	ValueExact
	// ValueRegex holds when Regexp matches a value.
	ValueRegex
)

// FieldMatch is a condition on a header field or query parameter. A
// header that occurs several times holds when any occurrence does.
type FieldMatch struct {
	// Name is the field name: a header's (compared case-insensitively) or
	// a query parameter's (compared exactly, as sent).
	Name   string
	Kind   ValueKind
	Value  string
	Regexp *regexp.Regexp
}

// Redirect is a redirect action. The Location keeps the request's path
// and query unless Path says otherwise.
type Redirect struct {
	// Scheme is "http" or "https"; empty keeps the request's.
	Scheme string
	// Host replaces the request's host; empty keeps it (without its port).
	Host string
	// Port is added to the host; 0 leaves the port out (the scheme's
	// default).
	Port int
	// Path replaces the path; empty keeps it. The query is kept either
	// way.
	Path string
	// Status is 301, 302, 303, 307 or 308.
	Status int
}

// Respond is a fixed-response action.
type Respond struct {
	Status int
	Header h1.Header
	Body   []byte
}

// Rewrite changes the path of a request on its way upstream. The query is
// kept.
type Rewrite struct {
	// Prefix, when not empty, is replaced by With at the start of the
	// path (on a segment boundary, as PathPrefix matches): Prefix "/api"
	// and With "" turn "/api/users" into "/users" and "/api" into "/".
	Prefix string
	// Regexp, when not nil, is replaced by With (which may use $1, ${name})
	// wherever it matches the path.
	Regexp *regexp.Regexp
	With   string
}

// HeaderRules change a message's header fields: Remove first, then Set
// (replacing every field of the name), then Add.
type HeaderRules struct {
	Set    []HeaderValue
	Add    []HeaderValue
	Remove []string
}

// HeaderValue is a header field whose value is a Template.
type HeaderValue struct {
	Name  string
	Value Template
}
