package route

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Paths are matched after normalisation, which makes every spelling of a
// path that a backend could read as the same resource one string:
//
//   - dot segments are removed (RFC 3986 §5.2.4): "/a/./b/../c" is "/a/c";
//     a ".." above the root ("/..", "/a/../..") is refused with 400 rather
//     than dropped, since no honest client sends one;
//   - percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_",
//     "~") are decoded (RFC 3986 §6.2.2.2): "/%2e%2e/" is a dot segment
//     and "/%61pi" is "/api";
//   - runs of slashes are merged, as NGINX does by default: "//admin" is
//     "/admin", the path many backends serve for it (an empty segment is
//     no segment: "/a//../b" is "/b");
//   - other percent-encodings are kept as sent, "%2F" (an encoded "/")
//     included: "/a%2Fb" is one segment, matched as such, and reaches
//     the backend unchanged;
//   - a "%" that starts no escape is taken literally and encoded, "%25",
//     so that decoding cannot make a new escape of what follows it.
//
// A path already in that form, as nearly every one is, is matched where
// it lies; otherwise the normalised path replaces it in the request, so
// that what a route matched is what its backend receives.

// slashPath is the path of an absolute-form target without one
// ("http://host"). Read-only.
var slashPath = []byte("/")

// target locates the parts of a request target.
type target struct {
	// hasPath is false for targets without a path: "*" (OPTIONS) and the
	// authority-form of CONNECT.
	hasPath bool
	// start and end delimit the path; qmark is the index of the "?"
	// that starts the query, -1 without one.
	start, end, qmark int
}

// splitTarget finds the path and query of the request target t, in
// origin-form ("/p?q") or absolute-form ("http://host/p?q").
func splitTarget(method, t []byte) target {
	tg := target{qmark: -1}
	if string(method) == "CONNECT" || len(t) == 0 {
		return tg
	}
	if t[0] != '/' {
		sep := bytes.Index(t, []byte("://"))
		if sep < 0 {
			return tg // "*"
		}
		rest := sep + 3
		if i := bytes.IndexAny(t[rest:], "/?#"); i >= 0 {
			tg.start = rest + i
		} else {
			tg.start = len(t)
		}
	}
	tg.end = len(t)
	if q := bytes.IndexByte(t[tg.start:], '?'); q >= 0 {
		tg.qmark = tg.start + q
		tg.end = tg.qmark
	}
	tg.hasPath = tg.start == tg.end || t[tg.start] == '/'
	return tg
}

// path returns the target's path: nil without one, "/" for an
// absolute-form target with an empty path.
func (tg target) path(t []byte) []byte {
	switch {
	case !tg.hasPath:
		return nil
	case tg.start == tg.end:
		return slashPath
	}
	return t[tg.start:tg.end]
}

// query returns the target's query, without the "?"; nil without one.
func (tg target) query(t []byte) []byte {
	if tg.qmark < 0 {
		return nil
	}
	return t[tg.qmark+1:]
}

// replacePath appends to dst the target t with its path replaced by p.
func (tg target) replacePath(dst, t, p []byte) []byte {
	dst = append(dst, t[:tg.start]...)
	dst = append(dst, p...)
	return append(dst, t[tg.end:]...)
}

// clean reports whether the path p (starting with "/") is already
// normalised: no empty, "." or ".." segment but a last empty one, and no
// percent-encoded unreserved character. It reads p once and copies
// nothing.
func clean(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '/':
			rest := p[i+1:]
			if len(rest) == 0 {
				continue
			}
			switch {
			case rest[0] == '/':
				return false
			case rest[0] != '.':
			case len(rest) == 1 || rest[1] == '/':
				return false
			case rest[1] == '.' && (len(rest) == 2 || rest[2] == '/'):
				return false
			}
		case '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) || isUnreserved(unhex(p[i+1])<<4|unhex(p[i+2])) {
				return false
			}
		}
	}
	return true
}

// normalise appends the normal form of the path p (starting with "/") to
// dst[:0]. It reports false when p climbs above the root.
func normalise(dst, p []byte) ([]byte, bool) {
	dst = append(dst[:0], '/')
	// trailing says the result ends with "/": the last segment was
	// empty, "." or "..".
	trailing := true
	for i := 1; i <= len(p); {
		j := bytes.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p)
		} else {
			j += i
		}
		start := len(dst)
		dst = appendDecoded(dst, p[i:j])
		switch string(dst[start:]) {
		case "", ".":
			dst = dst[:start]
			trailing = true
		case "..":
			if start == 1 {
				return dst[:1], false
			}
			dst = dst[:bytes.LastIndexByte(dst[:start-1], '/')+1]
			trailing = true
		default:
			dst = append(dst, '/')
			trailing = false
		}
		i = j + 1
	}
	if !trailing {
		dst = dst[:len(dst)-1]
	}
	return dst, true
}

// appendDecoded appends the segment seg with its percent-encoded
// unreserved characters decoded, and a "%" that starts no escape encoded
// as "%25": taken literally, as a lenient backend takes it, and never
// the start of an escape that decoding put together ("%%370" is not
// "%70").
func appendDecoded(dst, seg []byte) []byte {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
			dst = append(dst, "%25"...)
			continue
		}
		if d := unhex(seg[i+1])<<4 | unhex(seg[i+2]); isUnreserved(d) {
			dst = append(dst, d)
		} else {
			dst = append(dst, seg[i:i+3]...)
		}
		i += 2
	}
	return dst
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// CheckPath checks a path written in a route: the value of an exact or
// prefix path condition, or the prefix and replacement of a prefix
// Rewrite. It must start with "/", hold visible ASCII only, without query
// or fragment, and be in the normal form that requests' paths are
// matched in: no empty, "." or ".." segment but a last empty one, no
// percent-encoded unreserved character, and no "%" that starts no
// escape. It returns nil or a *PathError. New applies it to every route;
// a configuration parser calls it to report a bad path where it was
// written, with the grammar the Table applies.
func CheckPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return &PathError{Path: p, Problem: `is not a path; it must start with "/" and hold visible ASCII only (percent-encode the rest)`}
	}
	if strings.ContainsAny(p, "?#") {
		return &PathError{Path: p, Problem: `holds a query or fragment; give the path alone (percent-encode a "?" or "#" that is part of it)`}
	}
	n, ok := normalise(nil, []byte(p))
	switch {
	case !ok:
		return &PathError{Path: p, Problem: `climbs above the root with ".."`}
	case string(n) != p:
		return &PathError{Path: p, Normal: string(n),
			Problem: "is not in normal form, and requests are matched once theirs are normalised, so it would never match"}
	}
	return nil
}

// PathError is why CheckPath refuses a path. Its parts let a caller
// quote the paths its own way (shortened, say).
type PathError struct {
	// Path is the path refused.
	Path string
	// Problem says what is wrong, to follow the quoted path.
	Problem string
	// Normal, when not empty, is the normal form of Path, to write
	// instead: Path's only fault is not being in it.
	Normal string
}

// Error returns the quoted path, the problem, and the path to write
// instead when there is one.
func (e *PathError) Error() string {
	if e.Normal != "" {
		return fmt.Sprintf("%q %s; write %q", e.Path, e.Problem, e.Normal)
	}
	return fmt.Sprintf("%q %s", e.Path, e.Problem)
}

// rewrite is a compiled Rewrite.
type rewrite struct {
	// prefix, with, when re is nil.
	prefix, with string
	re           *regexp.Regexp
	repl         []byte
}

func compileRewrite(r *Rewrite) (*rewrite, error) {
	switch {
	case r.Prefix != "" && r.Regexp != nil:
		return nil, errors.New("give a prefix or a regexp, not both")
	case r.Regexp != nil:
		for i := 0; i < len(r.With); i++ {
			if c := r.With[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
				return nil, fmt.Errorf("replacement %q has %q at byte %d; a path has visible ASCII only, percent-encoded", r.With, c, i)
			}
		}
		return &rewrite{re: r.Regexp, repl: []byte(r.With)}, nil
	case r.Prefix == "":
		return nil, errors.New("give a prefix or a regexp to replace")
	}
	if err := CheckPath(r.Prefix); err != nil {
		return nil, fmt.Errorf("prefix: %w", err)
	}
	if r.With != "" {
		if err := CheckPath(r.With); err != nil {
			return nil, fmt.Errorf("replacement: %w", err)
		}
	}
	return &rewrite{prefix: r.Prefix, with: r.With}, nil
}

// apply rewrites path into dst[:0]. changed is false (and out nil) when
// the rewrite does not apply; ok is false when a regexp's result climbs
// above the root. Prefix rewrites allocate nothing once dst has grown.
func (rw *rewrite) apply(dst, path []byte) (out []byte, changed, ok bool) {
	if rw.re != nil {
		if !rw.re.Match(path) {
			return nil, false, true
		}
		r := rw.re.ReplaceAll(path, rw.repl)
		if len(r) == 0 || r[0] != '/' {
			r = append([]byte{'/'}, r...)
		}
		out, ok = normalise(dst, r)
		return out, ok, ok
	}
	rest, ok := cutPrefix(path, rw.prefix)
	if !ok {
		return nil, false, true
	}
	return joinPath(dst[:0], rw.with, rest), true, true
}

// cutPrefix reports whether path starts with the prefix on a segment
// boundary, as PathPrefix matches, and returns the rest: empty, or
// starting with "/".
func cutPrefix(path []byte, prefix string) ([]byte, bool) {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return nil, false
	}
	if strings.HasSuffix(prefix, "/") {
		return path[len(prefix)-1:], true
	}
	if len(path) > len(prefix) && path[len(prefix)] != '/' {
		return nil, false
	}
	return path[len(prefix):], true
}

// joinPath appends with and rest (empty, or starting with "/") to dst as
// one path with a single "/" between them.
func joinPath(dst []byte, with string, rest []byte) []byte {
	switch {
	case with == "":
		if len(rest) == 0 {
			return append(dst, '/')
		}
		return append(dst, rest...)
	case strings.HasSuffix(with, "/") && len(rest) > 0:
		return append(append(dst, with...), rest[1:]...)
	}
	return append(append(dst, with...), rest...)
}
