package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// redirect is a compiled Redirect.
type redirect struct {
	scheme string // "" keeps the request's
	host   string // "" keeps the request's; IPv6 in brackets
	port   string // ":8443", or "" for none
	path   string // "" keeps the request's
	status int
}

func compileRedirect(r *Redirect) (*redirect, error) {
	rd := &redirect{scheme: strings.ToLower(r.Scheme), path: r.Path, status: r.Status}
	switch r.Status {
	case 301, 302, 303, 307, 308:
	default:
		return nil, fmt.Errorf("status %d is not a redirect; use 301, 302, 303, 307 or 308", r.Status)
	}
	switch rd.scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("scheme %q: use http or https", r.Scheme)
	}
	if r.Host != "" {
		host := r.Host
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			host = "[" + host + "]" // a Redirect's host may be a bare IPv6 address
		}
		key, err := hostName(host)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(key, "*") {
			return nil, fmt.Errorf("host %q: a redirect goes to one host, not a wildcard", r.Host)
		}
		rd.host = key
	}
	switch {
	case r.Port < 0 || r.Port > 65535:
		return nil, fmt.Errorf("port %d is out of range", r.Port)
	case r.Port > 0:
		rd.port = ":" + strconv.Itoa(r.Port)
	}
	if r.Path != "" {
		if !strings.HasPrefix(r.Path, "/") || strings.ContainsFunc(r.Path, func(c rune) bool {
			return c <= ' ' || c >= 0x7f || c == '?' || c == '#'
		}) {
			return nil, fmt.Errorf("path %q is not a path (\"/new\"; percent-encoded, without query: the request's is kept)", r.Path)
		}
	}
	if rd.scheme == "" && rd.host == "" && rd.port == "" && rd.path == "" {
		return nil, errors.New("changes neither scheme, host, port nor path: it would redirect to itself, forever")
	}
	return rd, nil
}

// location appends the redirect's Location for the request to dst:
// path is the request's normalised path, query its query.
func (rd *redirect) location(dst []byte, s *l7.Session, path, query []byte) []byte {
	reqHost := hostOnly(authority(s.Req))
	if rd.host != "" || len(reqHost) > 0 {
		switch {
		case rd.scheme != "":
			dst = append(dst, rd.scheme...)
		case s.TLS != nil:
			dst = append(dst, "https"...)
		default:
			dst = append(dst, "http"...)
		}
		dst = append(dst, "://"...)
		if rd.host != "" {
			dst = append(dst, rd.host...)
		} else {
			dst = append(dst, reqHost...)
		}
		dst = append(dst, rd.port...)
	}
	// Else a request without a host (HTTP/1.0) gets a relative
	// reference, resolved against what the client asked.
	switch {
	case rd.path != "":
		dst = append(dst, rd.path...)
	case len(path) > 0:
		dst = append(dst, path...)
	default:
		dst = append(dst, '/')
	}
	if len(query) > 0 {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	return dst
}

// respond is a compiled Respond.
type respond struct {
	status int
	header h1.Header
	body   []byte
	// ready says header has the route's response header rules applied
	// (they have no variables), so it is sent as it is.
	ready bool
}

func compileRespond(r *Respond) (*respond, error) {
	switch {
	case r.Status < 200 || r.Status > 599:
		return nil, fmt.Errorf("status %d: a fixed response has a final status, 200 to 599", r.Status)
	case (r.Status == 204 || r.Status == 304) && len(r.Body) > 0:
		return nil, fmt.Errorf("status %d has no body, but one is given", r.Status)
	}
	rs := &respond{status: r.Status, body: slices.Clone(r.Body)}
	for name, value := range r.Header.All() {
		if err := checkRuleName(string(name)); err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		if !h1.ValidFieldValue(value) {
			return nil, fmt.Errorf("header %s: value %q has control characters or leading or trailing spaces", name, value)
		}
		rs.header.AddBytes(name, value)
	}
	return rs, nil
}

// prepare applies constant response header rules to the fixed header
// once, sparing the requests the work.
func (rs *respond) prepare(r *rules) {
	if r.constant {
		r.apply(&rs.header, nil, nil)
		rs.ready = true
	}
}
