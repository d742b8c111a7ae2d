package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/weir-lb/weir/internal/httpsyntax"
	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/route"
	"gopkg.in/yaml.v3"
)

// routeKeys are the keys of a route.
var routeKeys = []string{
	"name", "match", "upstream", "redirect", "respond",
	"rewrite", "request_headers", "response_headers", "timeouts", "max_retries", "compress",
	"max_request_body", "retry",
}

// routeActions are the keys of which a route has exactly one.
var routeActions = []string{"upstream", "redirect", "respond"}

// proxyOnlyKeys are the route keys that apply to a proxied exchange (what
// is sent upstream, or how its answer is encoded), and so to routes whose
// action is upstream only.
var proxyOnlyKeys = []string{"rewrite", "request_headers", "timeouts", "max_retries", "compress", "max_request_body", "retry"}

// redirectStatuses are the status codes of a redirect.
var redirectStatuses = []int{301, 302, 303, 307, 308}

// proxyTarget reads where an http_proxy service sends requests: its
// upstream (inline, or a named pool) or its routes, one or the other.
func (p *parser) proxyTarget(m *mapping) (*Upstream, []Route) {
	un, rn := m.get("upstream"), m.get("routes")
	switch {
	case un != nil && rn != nil:
		p.errorf(m.keys["routes"], m.at("routes"), "a service has either upstream or routes, not both; name the pool under the top-level upstreams: and send a route to it with upstream: NAME, or remove routes")
		return nil, nil
	case un != nil:
		return p.upstreamRef(un, m.at("upstream"), true), nil
	case rn != nil:
		return nil, p.routes(m)
	}
	if !m.suggested["routes"] {
		m.missing("upstream", `say where to send traffic, as in upstream: {backends: ["127.0.0.1:8001"]}, or route requests with routes: [...]`)
	}
	return nil, nil
}

// routes reads the routes of an http_proxy service, and warns about any
// that an earlier route leaves nothing to.
func (p *parser) routes(m *mapping) []Route {
	const example = `routes: [{match: {path: {prefix: /api}}, upstream: api}]`
	items, ok := m.list("routes", example)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		p.errorf(m.get("routes"), m.at("routes"), "the list is empty; give at least one route, as in %s", example)
		return nil
	}
	names := make(map[string]Position)
	out := make([]Route, 0, len(items))
	for i, item := range items {
		if r, ok := p.route(item, fmt.Sprintf("%s[%d]", m.at("routes"), i), i, names); ok {
			out = append(out, r)
		}
	}
	if len(out) < len(items) {
		return out // the indices no longer line up; the errors say enough
	}
	described := make([]route.Route, len(out))
	for i, r := range out {
		described[i] = r.Route
	}
	for _, sh := range route.Unreachable(described) {
		r, by := out[sh.Route], out[sh.By]
		p.warnAt(r.Pos, "route %s can never match: route %s at %s takes every request it would; move it above or narrow the earlier one",
			quote(r.Route.Name), quote(by.Route.Name), by.Pos)
	}
	return out
}

// route reads one route; index is its place in the list, its default
// name. It reports whether the route is free of errors.
func (p *parser) route(n *yaml.Node, path string, index int, names map[string]Position) (Route, bool) {
	m := p.mapping(n, path, routeKeys)
	if m == nil {
		return Route{}, false
	}
	errs := len(p.errs)
	r := Route{Pos: p.pos(m.node), Route: route.Route{Name: strconv.Itoa(index), MaxRetries: -1}}
	p.routeName(m, &r, names)
	if mn := m.get("match"); mn != nil {
		r.Route.Match = p.match(mn, m.at("match"))
	}
	action := p.routeAction(m, &r.Route)
	if action != "" && action != "upstream" {
		for _, key := range proxyOnlyKeys {
			m.forbid(key, fmt.Sprintf("applies to routes that proxy (upstream: POOL), and a %s route sends nothing upstream; remove it", action))
		}
	}
	if rn := m.get("rewrite"); rn != nil {
		r.Route.Rewrite = p.rewrite(rn, m.at("rewrite"))
	}
	if hn := m.get("request_headers"); hn != nil {
		r.Route.RequestHeaders = p.headerRules(hn, m.at("request_headers"), true)
	}
	if hn := m.get("response_headers"); hn != nil {
		r.Route.ResponseHeaders = p.headerRules(hn, m.at("response_headers"), false)
	}
	if tn := m.get("timeouts"); tn != nil {
		r.Timeouts = p.routeTimeouts(tn, m.at("timeouts"))
	}
	m.integer("max_retries", &r.Route.MaxRetries, 0, math.MaxInt)
	if cn := m.get("compress"); cn != nil {
		r.Compress = p.compress(cn, m.at("compress"))
	}
	m.size("max_request_body", &r.Route.MaxRequestBody, 1, math.MaxInt64)
	r.Retry = p.retryPolicy(m)
	p.retryConflict(m, &r)
	return r, len(p.errs) == errs
}

// routeName reads a route's name, which defaults to its index, and
// checks that no other route of the service has it.
func (p *parser) routeName(m *mapping, r *Route, names map[string]Position) {
	pos := r.Pos
	if m.str("name", &r.Route.Name) {
		n := m.get("name")
		pos = p.pos(n)
		if !validServiceName.MatchString(r.Route.Name) {
			p.errorf(n, m.at("name"), "%s is not a valid name; use lower-case letters, digits, \"_\" and \"-\" (it labels metrics)", quote(r.Route.Name))
			return
		}
	} else if m.has("name") {
		return
	}
	if first, dup := names[r.Route.Name]; dup {
		how := ""
		if !m.has("name") {
			how = " (this route's default name, its index)"
		}
		p.errorAt(pos, m.at("name"), "route name %s%s is already used by the route at %s; route names must be unique in a service", quote(r.Route.Name), how, first)
		return
	}
	names[r.Route.Name] = pos
}

// routeAction reads the one action of a route and returns its key, or
// "" when there is none.
func (p *parser) routeAction(m *mapping, r *route.Route) string {
	var present []string
	for _, key := range routeActions {
		if m.has(key) {
			present = append(present, key)
		}
	}
	if len(present) == 0 {
		for _, key := range routeActions {
			if m.suggested[key] {
				return ""
			}
		}
		p.errorf(m.node, m.path, "the route has no action; give it one of upstream: POOL, redirect: {...} or respond: {...}")
		return ""
	}
	for _, key := range present[1:] {
		m.forbid(key, fmt.Sprintf("a route has one action, and this one has %s already; split it into two routes, or remove one", present[0]))
	}
	if n := m.get("upstream"); n != nil {
		if u := p.upstreamRef(n, m.at("upstream"), false); u != nil {
			r.Upstream = u.Name
		}
	}
	if n := m.get("redirect"); n != nil {
		r.Redirect = p.redirect(n, m.at("redirect"))
	}
	if n := m.get("respond"); n != nil {
		r.Respond = p.routeRespond(n, m.at("respond"))
	}
	return present[0]
}

// match reads the conditions of a route.
func (p *parser) match(n *yaml.Node, path string) route.Match {
	var mt route.Match
	m := p.mapping(n, path, []string{"host", "path", "method", "headers", "query"})
	if m == nil {
		return mt
	}
	if hn := m.get("host"); hn != nil {
		mt.Hosts = p.hostPatterns(hn, m.at("host"))
	}
	if pn := m.get("path"); pn != nil {
		mt.Path = p.pathMatch(pn, m.at("path"))
	}
	if mn := m.get("method"); mn != nil {
		mt.Methods = p.methods(mn, m.at("method"))
	}
	if hn := m.get("headers"); hn != nil {
		mt.Headers = p.fieldMatches(hn, m.at("headers"), true)
	}
	if qn := m.get("query"); qn != nil {
		mt.Query = p.fieldMatches(qn, m.at("query"), false)
	}
	return mt
}

// oneOrList returns the items of a value that is one string or a list of
// them, each with its path.
func (p *parser) oneOrList(n *yaml.Node, path, example string) ([]*yaml.Node, []string) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []*yaml.Node{n}, []string{path}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.errorf(n, path, "the list is empty; remove the key to match any, or give at least one, as in %s", example)
			return nil, nil
		}
		items, paths := make([]*yaml.Node, len(n.Content)), make([]string, len(n.Content))
		for i, item := range n.Content {
			items[i], paths[i] = resolve(item), fmt.Sprintf("%s[%d]", path, i)
		}
		return items, paths
	}
	p.wrongType(n, path, "a string or a list of strings, as in "+example)
	return nil, nil
}

// hostPatterns reads the host condition: names and wildcards, lower case.
func (p *parser) hostPatterns(n *yaml.Node, path string) []string {
	items, paths := p.oneOrList(n, path, `host: [example.com, "*.example.com"]`)
	seen := make(map[string]Position)
	var out []string
	for i, item := range items {
		s, ok := p.str(item, paths[i])
		if !ok {
			continue
		}
		h, err := hostPattern(s)
		if err != nil {
			p.errorf(item, paths[i], "%v", err)
			continue
		}
		if first, dup := seen[h]; dup {
			p.errorf(item, paths[i], "%s is listed twice (first at %s); remove one", quote(h), first)
			continue
		}
		seen[h] = p.pos(item)
		out = append(out, h)
	}
	return out
}

// hostPattern validates and lower-cases a host condition: a DNS name,
// "*." and a DNS name, or a bracketed IPv6 address (in its canonical
// form).
func hostPattern(s string) (string, error) {
	h := strings.ToLower(s)
	if inner, ok := strings.CutPrefix(h, "["); ok {
		a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		if err != nil || !strings.HasSuffix(inner, "]") || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%s is not a bracketed IPv6 address, such as [2001:db8::1], and has no port", quote(s))
		}
		return "[" + a.String() + "]", nil
	}
	name, _ := strings.CutPrefix(h, "*.")
	switch {
	case strings.Contains(h, ":"):
		return "", fmt.Errorf("%s: match a host without its port; weir compares the request's host without it", quote(s))
	case strings.Contains(name, "*"):
		return "", fmt.Errorf("%s: a wildcard is \"*.\" and a domain, as in *.example.com, and stands for one or more labels before it", quote(s))
	case strings.HasSuffix(name, "."):
		return "", fmt.Errorf("%s: write the name without its final dot, as in %s", quote(s), strings.TrimSuffix(name, "."))
	}
	if msg := checkDNSName(name); msg != "" {
		return "", fmt.Errorf("%s is not a host name: %s", quote(s), msg)
	}
	return h, nil
}

// checkDNSName returns a problem with a DNS name (lower case), or "".
func checkDNSName(name string) string {
	if name == "" || len(name) > 253 {
		return "a name is 1 to 253 characters"
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "" || len(label) > 63:
			return "each dot-separated label is 1 to 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "a label does not start or end with \"-\""
		case strings.IndexFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) >= 0:
			return "use letters, digits, \"-\" and \"_\" (write an internationalised name in its xn-- form)"
		}
	}
	return ""
}

// pathMatch reads the path condition: {exact: P}, {prefix: P} or
// {regex: RE}.
func (p *parser) pathMatch(n *yaml.Node, path string) route.PathMatch {
	var pm route.PathMatch
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, "{exact: /x}, {prefix: /x} or {regex: RE}")
		return pm
	}
	m := p.mapping(n, path, []string{"exact", "prefix", "regex"})
	key := p.oneKey(m, []string{"exact", "prefix", "regex"}, "as in path: {prefix: /api}")
	switch key {
	case "exact", "prefix":
		var s string
		if !m.str(key, &s) {
			return pm
		}
		if msg := checkMatchPath(s); msg != "" {
			p.errorf(m.get(key), m.at(key), "%s", msg)
			return pm
		}
		pm.Kind, pm.Value = route.PathExact, s
		if key == "prefix" {
			pm.Kind = route.PathPrefix
		}
	case "regex":
		if re := p.regex(m, "regex"); re != nil {
			pm.Kind, pm.Regexp = route.PathRegex, re
		}
	}
	return pm
}

// oneKey returns the one key of choices that m holds, reporting none or
// several; "" when there is not exactly one.
func (p *parser) oneKey(m *mapping, choices []string, example string) string {
	if m == nil {
		return ""
	}
	var present []string
	for _, key := range choices {
		if m.has(key) {
			present = append(present, key)
		}
	}
	switch len(present) {
	case 0:
		for _, key := range choices {
			if m.suggested[key] {
				return ""
			}
		}
		p.errorf(m.node, m.path, "give one of %s, %s", strings.Join(choices, ", "), example)
		return ""
	case 1:
		return present[0]
	}
	for _, key := range present[1:] {
		m.forbid(key, fmt.Sprintf("give one of %s, not several; this one has %s already", strings.Join(choices, ", "), present[0]))
	}
	return ""
}

// checkMatchPath returns a problem with the path of an exact or prefix
// condition, or "". A query gets a hint of its own: the condition sees
// the path only, and query: matches the rest.
func checkMatchPath(s string) string {
	if validPathBytes(s) && strings.ContainsAny(s, "?#") {
		return fmt.Sprintf("%s: a path condition sees the path only, without the query; match a query parameter with query:", quote(s))
	}
	return pathProblem(s)
}

// pathProblem returns what route.CheckPath finds wrong with the path s,
// the grammar the routing table applies, with the paths quoted as the
// file's values are; "" when s is fine.
func pathProblem(s string) string {
	var pe *route.PathError
	if !errors.As(route.CheckPath(s), &pe) {
		return ""
	}
	msg := quote(pe.Path) + " " + pe.Problem
	if pe.Normal != "" {
		msg += "; write " + quote(pe.Normal)
	}
	return msg
}

// validPathBytes reports whether s starts with "/" and holds visible
// ASCII only.
func validPathBytes(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f })
}

// regex compiles the RE2 expression of key.
func (p *parser) regex(m *mapping, key string) *regexp.Regexp {
	var s string
	if !m.str(key, &s) {
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		p.errorf(m.get(key), m.at(key), "%s is not an RE2 regular expression: %v", quote(s), strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	return re
}

// methods reads the method condition.
func (p *parser) methods(n *yaml.Node, path string) []string {
	items, paths := p.oneOrList(n, path, "method: [GET, HEAD]")
	var out []string
	for i, item := range items {
		s, ok := p.str(item, paths[i])
		if !ok {
			continue
		}
		if msg := checkMethod(s); msg != "" {
			p.errorf(item, paths[i], "%s", msg)
			continue
		}
		if slices.Contains(out, s) {
			p.errorf(item, paths[i], "%s is listed twice; remove one", quote(s))
			continue
		}
		out = append(out, s)
	}
	return out
}

// fieldMatches reads the header or query conditions: a mapping of names
// to a value (exact), {exact: V}, {regex: RE} or {present: true}.
func (p *parser) fieldMatches(n *yaml.Node, path string, header bool) []route.FieldMatch {
	what, example := "query parameter", "{version: \"2\"}"
	if header {
		what, example = "header", "{X-Canary: \"1\"}"
	}
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, "a mapping of names to conditions, as in "+example)
		return nil
	}
	sm := p.mapping(n, path, nil)
	var out []route.FieldMatch
	for _, name := range sm.order {
		k, v := sm.keys[name], sm.vals[name]
		if _, ok := p.str(k, path); !ok {
			continue
		}
		if header && !httpsyntax.IsToken(name) || !header && (name == "" || strings.ContainsAny(name, "&=#? \t")) {
			p.errorf(k, path, "%s is not a valid %s name", quote(name), what)
			continue
		}
		if f, ok := p.fieldMatch(v, sm.at(name), name); ok {
			out = append(out, f)
		}
	}
	return out
}

// fieldMatch reads the condition on one header or query parameter.
func (p *parser) fieldMatch(n *yaml.Node, path, name string) (route.FieldMatch, bool) {
	f := route.FieldMatch{Name: name, Kind: route.ValueExact}
	if n.Kind == yaml.ScalarNode {
		s, ok := p.str(n, path)
		if ok {
			f.Value = s
			ok = p.checkMatchValue(n, path, s)
		}
		return f, ok
	}
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, `a value, or one of {exact: V}, {regex: RE} or {present: true}`)
		return f, false
	}
	m := p.mapping(n, path, []string{"exact", "regex", "present"})
	switch p.oneKey(m, []string{"exact", "regex", "present"}, "as in {regex: \"^v[12]$\"}") {
	case "exact":
		return f, m.str("exact", &f.Value) && p.checkMatchValue(m.get("exact"), m.at("exact"), f.Value)
	case "regex":
		f.Kind, f.Regexp = route.ValueRegex, p.regex(m, "regex")
		return f, f.Regexp != nil
	case "present":
		var present bool
		if !m.boolean("present", &present) {
			return f, false
		}
		if !present {
			p.errorf(m.get("present"), m.at("present"), "a route matches what a request has, not what it lacks; put a route that takes the requests with the field before this one, and remove present: false")
			return f, false
		}
		f.Kind = route.ValuePresent
		return f, true
	}
	return f, false
}

// checkMatchValue checks the value of an exact header or query
// condition: no control characters, which no request could carry.
func (p *parser) checkMatchValue(n *yaml.Node, path, value string) bool {
	if _, bad := checkHeader("X", value); bad != "" {
		p.errorf(n, path, "%s", bad)
		return false
	}
	return true
}

// redirect reads a redirect action.
func (p *parser) redirect(n *yaml.Node, path string) *route.Redirect {
	m := p.mapping(n, path, []string{"scheme", "host", "port", "path", "status"})
	if m == nil {
		return nil
	}
	rd := &route.Redirect{Status: DefaultRedirectStatus}
	enumField(m, "scheme", &rd.Scheme, "http", "https")
	if m.str("host", &rd.Host) {
		if h, err := hostPattern(rd.Host); err != nil || strings.HasPrefix(h, "*") {
			p.errorf(m.get("host"), m.at("host"), "%s is not a host name; give the name to redirect to, and the port with port:", quote(rd.Host))
		} else {
			rd.Host = h
		}
	}
	m.integer("port", &rd.Port, 1, maxPort)
	if m.str("path", &rd.Path) {
		switch {
		case !validPathBytes(rd.Path):
			p.errorf(m.get("path"), m.at("path"), "%s is not a path; it must start with \"/\" and hold visible ASCII only (percent-encode the rest)", quote(rd.Path))
		case strings.ContainsAny(rd.Path, "?#"):
			p.errorf(m.get("path"), m.at("path"), "%s: a redirect keeps the request's query; give the path alone", quote(rd.Path))
		}
	}
	if sn := m.get("status"); sn != nil {
		if v, ok := p.integer(sn, m.at("status"), "an integer"); ok {
			if !slices.Contains(redirectStatuses, v) {
				p.errorf(sn, m.at("status"), "%d is not a redirect status; use 301 or 308 (permanent), 302, 303 or 307 (temporary); 307 and 308 keep the method and body", v)
			} else {
				rd.Status = v
			}
		}
	}
	if !m.has("scheme") && !m.has("host") && !m.has("port") && !m.has("path") {
		p.errorf(m.node, path, "a redirect with no scheme, host, port or path sends the client back to the URL it asked for, in a loop; set at least one")
	}
	return rd
}

// routeRespond reads a respond action.
func (p *parser) routeRespond(n *yaml.Node, path string) *route.Respond {
	m := p.mapping(n, path, []string{"status", "body", "headers"})
	if m == nil {
		return nil
	}
	rs := &route.Respond{Status: DefaultRespondStatus}
	m.integer("status", &rs.Status, 200, 599)
	var body string
	if m.str("body", &body) {
		rs.Body = []byte(body)
		if body != "" && (rs.Status == 204 || rs.Status == 304) {
			p.errorf(m.get("body"), m.at("body"), "a %d response has no body; remove body, or choose another status", rs.Status)
		}
	}
	headers := m.stringMap("headers", func(name, value string) (string, string) {
		if msg := ruleNameProblem(name); msg != "" {
			return msg, ""
		}
		if !h1.ValidFieldValue([]byte(value)) {
			return "", fmt.Sprintf("value %s holds control characters, or spaces at its ends; remove them", quote(value))
		}
		return "", ""
	})
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rs.Header.Add(name, headers[name])
	}
	return rs
}

// rewrite reads a rewrite: {strip_prefix: P}, {replace_prefix: P, with:
// W} or {regex: RE, with: W}.
func (p *parser) rewrite(n *yaml.Node, path string) *route.Rewrite {
	m := p.mapping(n, path, []string{"strip_prefix", "replace_prefix", "regex", "with"})
	key := p.oneKey(m, []string{"strip_prefix", "replace_prefix", "regex"}, "as in rewrite: {strip_prefix: /api}")
	if key == "" {
		return nil
	}
	rw := &route.Rewrite{}
	if key == "strip_prefix" {
		m.forbid("with", "strip_prefix removes the prefix; to put something in its place, write replace_prefix: P, with: W")
	} else if !m.has("with") {
		m.missing("with", "say what replaces the match, as in with: /v2")
		return nil
	}
	switch key {
	case "strip_prefix", "replace_prefix":
		if !m.str(key, &rw.Prefix) {
			return nil
		}
		if msg := pathProblem(rw.Prefix); msg != "" {
			p.errorf(m.get(key), m.at(key), "%s", msg)
			return nil
		}
		if key == "strip_prefix" && rw.Prefix == "/" {
			p.errorf(m.get(key), m.at(key), "every path starts with \"/\", and a path without it is no path; strip a longer prefix, or remove rewrite")
			return nil
		}
		if m.str("with", &rw.With) && rw.With != "" {
			if msg := pathProblem(rw.With); msg != "" {
				p.errorf(m.get("with"), m.at("with"), "%s", msg)
				return nil
			}
		}
	case "regex":
		if rw.Regexp = p.regex(m, "regex"); rw.Regexp == nil {
			return nil
		}
		if !m.str("with", &rw.With) {
			return nil
		}
		if strings.ContainsFunc(rw.With, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '?' || r == '#' }) {
			p.errorf(m.get("with"), m.at("with"), "%s: a path holds visible ASCII only (percent-encode the rest), and no query or fragment", quote(rw.With))
			return nil
		}
		if msg := checkExpansion(rw.Regexp, rw.With); msg != "" {
			p.errorf(m.get("with"), m.at("with"), "%s", msg)
			return nil
		}
	}
	return rw
}

// checkExpansion returns a problem with a replacement template (as
// regexp.Expand reads it: $1, ${1}, $name, ${name}, $$) that refers to a
// group re does not have, or "".
func checkExpansion(re *regexp.Regexp, with string) string {
	for i := 0; i < len(with); i++ {
		if with[i] != '$' {
			continue
		}
		i++
		if i < len(with) && with[i] == '$' {
			continue
		}
		var name string
		if i < len(with) && with[i] == '{' {
			end := strings.IndexByte(with[i:], '}')
			if end < 0 {
				return fmt.Sprintf("%s: \"${\" is not closed; write $$ for a literal dollar sign", quote(with))
			}
			name, i = with[i+1:i+end], i+end
		} else {
			j := i
			for j < len(with) && (with[j] == '_' || with[j] >= 'a' && with[j] <= 'z' || with[j] >= 'A' && with[j] <= 'Z' || with[j] >= '0' && with[j] <= '9') {
				j++
			}
			name, i = with[i:j], j-1
		}
		if name == "" {
			return fmt.Sprintf("%s: a \"$\" that names no group; write $$ for a literal dollar sign", quote(with))
		}
		if num, err := strconv.Atoi(name); err == nil {
			if num > re.NumSubexp() {
				return fmt.Sprintf("%s refers to group %d, and the regex has %d; number groups from 1, or write $$ for a literal dollar sign", quote(with), num, re.NumSubexp())
			}
		} else if name[0] >= '0' && name[0] <= '9' {
			return fmt.Sprintf("%s refers to a group named %s, as regexp reads it; write ${N} when letters follow a group number", quote(with), quote(name))
		} else if re.SubexpIndex(name) < 0 {
			return fmt.Sprintf("%s refers to group %s, which the regex does not name; name it with (?P<%s>...)", quote(with), quote(name), name)
		}
	}
	return ""
}

// headerRules reads request_headers (request true) or response_headers:
// set, add and remove.
func (p *parser) headerRules(n *yaml.Node, path string, request bool) route.HeaderRules {
	var hr route.HeaderRules
	m := p.mapping(n, path, []string{"set", "add", "remove"})
	if m == nil {
		return hr
	}
	if sn := m.get("set"); sn != nil {
		hr.Set = p.headerValues(sn, m.at("set"), request, false)
	}
	if an := m.get("add"); an != nil {
		hr.Add = p.headerValues(an, m.at("add"), request, true)
	}
	items, _ := m.list("remove", "remove: [Server, X-Powered-By]")
	for i, item := range items {
		ipath := fmt.Sprintf("%s[%d]", m.at("remove"), i)
		name, ok := p.str(item, ipath)
		switch {
		case !ok || !p.checkRuleName(item, ipath, name):
		case request && strings.EqualFold(name, "Host"):
			p.errorf(item, ipath, "an HTTP/1.1 request must have a Host field; set Host instead of removing it")
		default:
			hr.Remove = append(hr.Remove, name)
		}
	}
	return hr
}

// headerValues reads a mapping of header names to templates, in file
// order: the set (add false) or add rules of request or response
// headers.
func (p *parser) headerValues(n *yaml.Node, path string, request, add bool) []route.HeaderValue {
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, "a mapping of header names to values, as in {X-Client-IP: \"{client_ip}\"}")
		return nil
	}
	sm := p.mapping(n, path, nil)
	var out []route.HeaderValue
	for _, name := range sm.order {
		k, v := sm.keys[name], sm.vals[name]
		if _, ok := p.str(k, path); !ok || !p.checkRuleName(k, path, name) {
			continue
		}
		value, ok := p.str(v, sm.at(name))
		if !ok {
			continue
		}
		if !h1.ValidFieldValue([]byte(value)) {
			p.errorf(v, sm.at(name), "value %s holds control characters, or spaces at its ends; remove them", quote(value))
			continue
		}
		t, err := route.ParseTemplate(value)
		if err != nil {
			p.errorf(v, sm.at(name), "%v", err)
			continue
		}
		if request && strings.EqualFold(name, "Host") {
			if add {
				p.errorf(k, path, "a second Host field makes a request invalid; set Host instead of adding one")
				continue
			}
			if !validHostBytes(strings.ReplaceAll(value, "{host}", "h")) {
				p.errorf(v, sm.at(name), "%s is not a host[:port]; it may use {host} only, as in \"{host}\" or \"api.internal:8080\"", quote(value))
				continue
			}
		}
		out = append(out, route.HeaderValue{Name: name, Value: t})
	}
	return out
}

// checkRuleName checks a header name in a header rule.
func (p *parser) checkRuleName(n *yaml.Node, path, name string) bool {
	if msg := ruleNameProblem(name); msg != "" {
		p.errorf(n, path, "%s", msg)
		return false
	}
	return true
}

// ruleNameProblem returns a problem with a header name that a rule or a
// fixed response sets, or "": the framing and hop-by-hop fields are
// weir's to write, for each hop.
func ruleNameProblem(name string) string {
	switch {
	case !h1.ValidFieldName([]byte(name)):
		return fmt.Sprintf("%s is not a valid header name; use letters, digits and \"-\"", quote(name))
	case h1.IsHopByHop([]byte(name)) || strings.EqualFold(name, "Content-Length"):
		return fmt.Sprintf("header %s is a framing or hop-by-hop field, which weir writes itself for each hop; remove it", quote(name))
	}
	return ""
}

// validHostBytes reports whether s is a non-empty host[:port] made of
// the bytes of names, IPv6 literals and ports.
func validHostBytes(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._:[]", r))
	})
}

// routeTimeouts reads a route's timeouts: overrides of its pool's.
func (p *parser) routeTimeouts(n *yaml.Node, path string) RouteTimeouts {
	var t RouteTimeouts
	m := p.mapping(n, path, []string{"connect", "read", "write", "idle", "header"})
	if m == nil {
		return t
	}
	for _, key := range []string{"idle", "header"} {
		m.forbid(key, "bounds the client's connection, which is the service's, not a route's; set it in the pool's timeouts")
	}
	m.duration("connect", &t.Connect, false)
	m.duration("read", &t.Read, false)
	m.duration("write", &t.Write, false)
	return t
}

// compress reads a route's compress mapping into the policy pkg/compress
// applies, every default filled in.
func (p *parser) compress(n *yaml.Node, path string) *compress.Policy {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "want a mapping, got %s; write compress: {} for the defaults", describe(n))
		return nil
	}
	m := p.mapping(n, path, []string{"encodings", "min_size", "types"})
	c := &compress.Policy{Encodings: compress.DefaultEncodings(), MinSize: compress.DefaultMinSize, Types: compress.DefaultTypes()}
	choices := []string{"zstd", "br", "gzip"}
	if m.has("encodings") {
		c.Encodings = nil
	}
	m.stringItems("encodings", "encodings: [zstd, br, gzip]", "remove compress to compress nothing, or list zstd, br or gzip",
		func(item *yaml.Node, ipath, s string) {
			e, err := compress.ParseEncoding(s)
			switch {
			case err != nil || !slices.Contains(choices, s):
				p.errorf(item, ipath, "unknown encoding %s; %s", quote(s), didYouMean(s, choices, "encodings"))
			case slices.Contains(c.Encodings, e):
				p.errorf(item, ipath, "%s is listed twice; remove one", quote(s))
			default:
				c.Encodings = append(c.Encodings, e)
			}
		})
	minSize := int(c.MinSize)
	m.integer("min_size", &minSize, 0, math.MaxInt)
	c.MinSize = int64(minSize)
	if minSize == 0 {
		c.MinSize = -1 // compress.Policy's "no minimum"; its 0 means the default
	}
	if m.has("types") {
		c.Types = nil
	}
	m.stringItems("types", "types: [text/html, application/json]", "remove types for the defaults, or list content types such as text/html",
		func(item *yaml.Node, ipath, s string) {
			t := strings.ToLower(s)
			switch {
			case !validMediaRange(t):
				p.errorf(item, ipath, "%s is not a content type; write type/subtype without parameters, as in text/html, or type/* for every subtype", quote(s))
			case slices.Contains(c.Types, t):
				p.errorf(item, ipath, "%s is listed twice; remove one", quote(s))
			default:
				c.Types = append(c.Types, t)
			}
		})
	return c
}

// stringItems calls each with every string of the list key, reporting
// an item that is no string, and an empty list with the advice ifEmpty.
func (m *mapping) stringItems(key, example, ifEmpty string, each func(item *yaml.Node, path, s string)) {
	items, ok := m.list(key, example)
	if !ok {
		return
	}
	if len(items) == 0 {
		m.p.errorf(m.get(key), m.at(key), "the list is empty; %s", ifEmpty)
	}
	for i, item := range items {
		ipath := fmt.Sprintf("%s[%d]", m.at(key), i)
		if s, ok := m.p.str(item, ipath); ok {
			each(item, ipath, s)
		}
	}
}

// validMediaRange reports whether s is type/subtype or type/*, without
// parameters.
func validMediaRange(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && httpsyntax.IsToken(typ) && typ != "*" && (sub == "*" || httpsyntax.IsToken(sub))
}
