package route

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// How a request finds its route, in one pass and without allocating:
//
//  1. Its host, lower-cased and without port or trailing dot, is looked
//     up in the map of exact names; failing that, each of its suffixes
//     that starts at a dot, longest first, in the map of wildcards. The
//     hostSet found holds every route that may take the host: for an
//     exact name, the routes listing it and those whose wildcard matches
//     it; for a wildcard, its routes and those of the shorter wildcards
//     that match whatever it matches.
//  2. In that set and in the set of host-less routes, the path walks a
//     trie of path segments, whose node for the deepest segment reached
//     holds, in route order, every exact and prefix route the path
//     matches. Regexp and path-less routes sit in a list beside it.
//  3. Those four ordered lists are merged by route index, and the first
//     route whose remaining conditions (regexp, methods, header fields,
//     query) hold takes the request. So the first route in the table
//     that matches wins, whatever kinds of host and path it matched by.

// maxHost bounds the host names looked up; a longer one (DNS names have
// at most 253 bytes) can only be taken by routes without hosts.
const maxHost = 256

// hostSet is the routes that may take requests for some hosts.
type hostSet struct {
	// trie holds the routes with exact and prefix paths.
	trie trie
	// other holds the others (any path, regexp), in route order.
	other []int32
}

// view is what conditions look at in a request.
type view struct {
	method, path, query []byte
	hasPath             bool
	header              *h1.Header
}

// lookup returns the first route in hs (nil: none) or among the
// host-less routes that takes the request, nil if none does.
func (t *Table) lookup(hs *hostSet, v *view) *entry {
	var lists [4][]int32
	if hs != nil {
		if v.hasPath {
			lists[0] = hs.trie.find(v.path)
		}
		lists[1] = hs.other
	}
	if v.hasPath {
		lists[2] = t.anyHost.trie.find(v.path)
	}
	lists[3] = t.anyHost.other
	for {
		best, bestIdx := -1, int32(math.MaxInt32)
		for i := range lists {
			if len(lists[i]) > 0 && lists[i][0] < bestIdx {
				best, bestIdx = i, lists[i][0]
			}
		}
		if best < 0 {
			return nil
		}
		lists[best] = lists[best][1:]
		if e := t.entries[bestIdx]; e.holds(v) {
			return e
		}
	}
}

// hostSet returns the routes that may take requests for host (lower
// case, no port), nil when only host-less ones may.
func (t *Table) hostSet(host []byte) *hostSet {
	if len(host) == 0 {
		return nil
	}
	if hs, ok := t.exact[string(host)]; ok {
		return hs
	}
	if len(t.wild) == 0 {
		return nil
	}
	// From 1, and after a byte that is not a dot: a wildcard needs a
	// label before its suffix.
	for i := 1; i < len(host); i++ {
		if host[i] == '.' && host[i-1] != '.' {
			if hs, ok := t.wild[string(host[i:])]; ok {
				return hs
			}
		}
	}
	return nil
}

// hostSetOf returns the routes that may take requests for authority,
// nil when only host-less ones may. The host is compared without its
// port and trailing dot, case-insensitively; one longer than maxHost can
// be no route's.
func (t *Table) hostSetOf(authority []byte) *hostSet {
	h := hostOnly(authority)
	if n := len(h); n > 0 && h[n-1] == '.' {
		h = h[:n-1]
	}
	if len(h) > maxHost {
		return nil
	}
	for _, c := range h {
		if 'A' <= c && c <= 'Z' {
			return t.hostSetLower(h)
		}
	}
	return t.hostSet(h)
}

// hostSetLower is hostSetOf for a host with upper-case letters, which
// it lower-cases in a buffer of its own: kept out of hostSetOf, so that
// the usual lower-case host costs no buffer to clear.
//
//go:noinline
func (t *Table) hostSetLower(h []byte) *hostSet {
	var buf [maxHost]byte
	for i, c := range h {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t.hostSet(buf[:len(h)])
}

// authority returns the authority the request is addressed to, as
// req.Authority does, without searching an origin-form target for "://".
func authority(req *h1.Request) []byte {
	if len(req.Target) > 0 && req.Target[0] == '/' {
		return req.Host
	}
	return req.Authority()
}

// hostOnly returns authority without its port: "[::1]" for "[::1]:80".
func hostOnly(authority []byte) []byte {
	if len(authority) > 0 && authority[0] == '[' {
		if i := bytes.IndexByte(authority, ']'); i >= 0 {
			return authority[:i+1]
		}
		return authority
	}
	if i := bytes.IndexByte(authority, ':'); i >= 0 {
		return authority[:i]
	}
	return authority
}

// holds reports whether the route's conditions other than host and
// exact or prefix path hold for the request.
func (e *entry) holds(v *view) bool {
	if e.plain {
		return true
	}
	if e.pathRe != nil && (!v.hasPath || !e.pathRe.Match(v.path)) {
		return false
	}
	if len(e.methods) > 0 && !slices.Contains(e.methods, string(v.method)) {
		return false
	}
	for i := range e.headers {
		if !e.headers[i].inHeader(v.header) {
			return false
		}
	}
	for i := range e.query {
		if !e.query[i].inQuery(v.query) {
			return false
		}
	}
	return true
}

// fieldCond is a compiled FieldMatch.
type fieldCond struct {
	name  string
	kind  ValueKind
	value string
	re    *regexp.Regexp
}

func (c *fieldCond) holds(v []byte) bool {
	switch c.kind {
	case ValueExact:
		return string(v) == c.value
	case ValueRegex:
		return c.re.Match(v)
	}
	return true
}

// inHeader reports whether a field of h named c.name holds.
func (c *fieldCond) inHeader(h *h1.Header) bool {
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if equalFold(name, c.name) && c.holds(value) {
			return true
		}
	}
	return false
}

// inQuery reports whether a parameter of the query q named c.name holds,
// comparing names and values as sent (still percent-encoded). A
// parameter without "=" has the empty value.
func (c *fieldCond) inQuery(q []byte) bool {
	for len(q) > 0 {
		var pair []byte
		pair, q, _ = bytes.Cut(q, []byte("&"))
		k, val, _ := bytes.Cut(pair, []byte("="))
		if string(k) == c.name && c.holds(val) {
			return true
		}
	}
	return false
}

// equalFold compares an ASCII field name with a lower-case one.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// compileMatch checks a route's conditions and compiles those the
// lookup structures do not hold.
func (e *entry) compileMatch(m *Match) error {
	for _, h := range m.Hosts {
		key, err := hostName(h)
		if err != nil {
			return err
		}
		e.hosts = append(e.hosts, key)
	}
	e.pathKind = m.Path.Kind
	switch m.Path.Kind {
	case PathAny:
		if m.Path.Value != "" || m.Path.Regexp != nil {
			return fmt.Errorf("path condition %q has no kind; say exact, prefix or regex", m.Path.Value)
		}
	case PathExact, PathPrefix:
		if err := CheckPath(m.Path.Value); err != nil {
			return fmt.Errorf("path condition: %w", err)
		}
		e.path = m.Path.Value
	case PathRegex:
		if m.Path.Regexp == nil {
			return errors.New("regex path condition without a regexp")
		}
		e.pathRe = m.Path.Regexp
	default:
		return fmt.Errorf("unknown path kind %d", m.Path.Kind)
	}
	for _, method := range m.Methods {
		if !h1.ValidFieldName([]byte(method)) { // a method is a token, as a name is
			return fmt.Errorf("method %q is not a token", method)
		}
		e.methods = append(e.methods, method)
	}
	for _, f := range m.Headers {
		if !h1.ValidFieldName([]byte(f.Name)) {
			return fmt.Errorf("header condition: %q is not a field name", f.Name)
		}
		c, err := compileField(f)
		if err != nil {
			return fmt.Errorf("header %s: %w", f.Name, err)
		}
		c.name = strings.ToLower(f.Name)
		e.headers = append(e.headers, c)
	}
	for _, f := range m.Query {
		if f.Name == "" {
			return errors.New("query condition without a parameter name")
		}
		c, err := compileField(f)
		if err != nil {
			return fmt.Errorf("query parameter %s: %w", f.Name, err)
		}
		e.query = append(e.query, c)
	}
	return nil
}

func compileField(f FieldMatch) (fieldCond, error) {
	c := fieldCond{name: f.Name, kind: f.Kind, value: f.Value, re: f.Regexp}
	switch f.Kind {
	case ValuePresent:
		if f.Value != "" || f.Regexp != nil {
			return c, fmt.Errorf("condition %q has no kind; say exact or regex", f.Value)
		}
	case ValueExact:
	case ValueRegex:
		if f.Regexp == nil {
			return c, errors.New("regex condition without a regexp")
		}
	default:
		return c, fmt.Errorf("unknown value kind %d", f.Kind)
	}
	return c, nil
}

// hostName checks a host name written in a route and returns its key:
// the name in lower case, or for a wildcard "*.example.com" the suffix
// ".example.com" behind a "*". It refuses what pkg/config refuses (a
// port, a misplaced "*", a label DNS does not allow, an IPv6 zone), so
// that a Table built from Routes made by hand takes the same hosts as a
// configuration file; only a final dot, which pkg/config asks to have
// removed, it drops, as requests' hosts are compared without it.
func hostName(h string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	wildcard := strings.HasPrefix(name, "*.")
	if wildcard {
		name = name[2:]
	}
	switch {
	case h == "" || name == "":
		return "", fmt.Errorf("host %q is empty", h)
	case h == "*":
		return "", errors.New(`host "*" matches every host: leave hosts out instead`)
	case strings.HasPrefix(name, "["):
		a, err := netip.ParseAddr(strings.TrimSuffix(name[1:], "]"))
		if wildcard || !strings.HasSuffix(name, "]") || err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("host %q is not a bracketed IPv6 address (\"[2001:db8::1]\"), and has no port", h)
		}
		return "[" + a.String() + "]", nil
	case strings.Contains(name, ":"):
		if a, err := netip.ParseAddr(name); err == nil && a.Is6() {
			return "", fmt.Errorf("host %q: write an IPv6 address in brackets, as in \"[2001:db8::1]\"", h)
		}
		return "", fmt.Errorf("host %q has a port; hosts are matched without their port", h)
	case strings.Contains(name, "*"):
		return "", fmt.Errorf("host %q: only a whole first label may be a wildcard (\"*.example.com\")", h)
	case len(name) > 253:
		return "", fmt.Errorf("host %q is longer than a DNS name may be", h)
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "", fmt.Errorf("host %q has an empty label", h)
		case len(label) > 63:
			return "", fmt.Errorf("host %q has a label longer than the 63 bytes DNS allows", h)
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", fmt.Errorf("host %q has a label that starts or ends with \"-\"", h)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host %q has %q; a name has letters, digits, \"-\" and \"_\" (IDNs in punycode)", h, c)
			}
		}
	}
	if wildcard {
		return "*." + name, nil
	}
	return name, nil
}

// index builds the lookup structures from the compiled routes.
func (t *Table) index() {
	exact := map[string][]int32{}
	wild := map[string][]int32{} // by suffix, ".example.com"
	var anyHost []int32
	for _, e := range t.entries {
		if len(e.hosts) == 0 {
			anyHost = append(anyHost, e.index)
		}
		for _, h := range e.hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				wild[suffix] = append(wild[suffix], e.index)
			} else {
				exact[h] = append(exact[h], e.index)
			}
		}
	}
	// withWildcards adds to routes those of every wildcard matching any
	// name that ends in s from byte from on.
	withWildcards := func(routes []int32, s string, from int) []int32 {
		out := slices.Clone(routes)
		for i := from; i < len(s); i++ {
			if s[i] == '.' {
				out = append(out, wild[s[i:]]...)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	t.exact = make(map[string]*hostSet, len(exact))
	for name, routes := range exact {
		t.exact[name] = t.newHostSet(withWildcards(routes, name, 1))
	}
	t.wild = make(map[string]*hostSet, len(wild))
	for suffix, routes := range wild {
		t.wild[suffix] = t.newHostSet(withWildcards(routes, suffix, 1))
	}
	t.anyHost = *t.newHostSet(anyHost)
}

// newHostSet builds the lookup structures of routes, sorted.
func (t *Table) newHostSet(routes []int32) *hostSet {
	hs := &hostSet{}
	var root *trieBuilder
	for _, i := range routes {
		e := t.entries[i]
		if e.pathKind != PathExact && e.pathKind != PathPrefix {
			hs.other = append(hs.other, i)
			continue
		}
		if root == nil {
			root = &trieBuilder{}
		}
		root.insert(e)
	}
	if root != nil {
		hs.trie.build(root)
	}
	return hs
}

// union returns the sorted union of lists; nil when empty.
func union(lists ...[]int32) []int32 {
	var out []int32
	for _, l := range lists {
		out = append(out, l...)
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
