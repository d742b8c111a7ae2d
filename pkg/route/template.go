package route

import (
	"fmt"
	"strings"

	"github.com/weir-lb/weir/pkg/l7"
)

// Variable is a value a Template takes from the request.
type Variable uint8

// The variables a header value may use, written {name}.
const (
	varLiteral Variable = iota
	// VarClientIP is the client's IP address ({client_ip}): the one a
	// trusted PROXY protocol header carries, else the connection's.
	VarClientIP
	// VarHost is the request's host without its port ({host}).
	VarHost
	// VarScheme is "http" or "https", as the client connected ({scheme}).
	VarScheme
	// VarRequestID is the request's id ({request_id}); empty when the
	// service assigns none.
	VarRequestID
	// VarPath is the request's path, without the query ({path}).
	VarPath
)

var variableNames = map[string]Variable{
	"client_ip":  VarClientIP,
	"host":       VarHost,
	"scheme":     VarScheme,
	"request_id": VarRequestID,
	"path":       VarPath,
}

// Template is a header value with variables, parsed once by
// ParseTemplate.
type Template struct {
	parts []part
	text  string
}

type part struct {
	v   Variable
	lit string
}

// ParseTemplate parses a header value in which {client_ip}, {host},
// {scheme}, {request_id} and {path} stand for the request's. "{{" and
// "}}" stand for literal braces.
func ParseTemplate(s string) (Template, error) {
	t := Template{text: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && strings.HasPrefix(s[i:], "{{"), c == '}' && strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(c)
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return Template{}, fmt.Errorf("%q: \"{\" at byte %d is not closed; write {{ for a literal brace", s, i)
			}
			name := s[i+1 : i+end]
			v, ok := variableNames[name]
			if !ok {
				return Template{}, fmt.Errorf("%q: unknown variable {%s}; use {client_ip}, {host}, {scheme}, {request_id} or {path}", s, name)
			}
			flush()
			t.parts = append(t.parts, part{v: v})
			i += end
		case c == '}':
			return Template{}, fmt.Errorf("%q: \"}\" at byte %d closes nothing; write }} for a literal brace", s, i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// MustTemplate is ParseTemplate for values known to be valid; it panics
// on an error.
func MustTemplate(s string) Template {
	t, err := ParseTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template as written.
func (t Template) String() string { return t.text }

// Constant reports whether the template has no variables.
func (t Template) Constant() bool {
	for _, p := range t.parts {
		if p.v != varLiteral {
			return false
		}
	}
	return true
}

// AppendTo appends the template's value for the request of s to dst and
// returns the extended buffer. It allocates nothing when dst has room.
//
// {host} is the request's host as sent, without its port; {path} is the
// path of s.Req.Target at the time of the call (within a Table: after
// normalisation and any rewrite, the path the upstream receives); {scheme}
// is "https" when the client connected over TLS; {client_ip} and
// {request_id} are s.Client's address and s.RequestID.
func (t Template) AppendTo(dst []byte, s *l7.Session) []byte {
	for _, p := range t.parts {
		switch p.v {
		case varLiteral:
			dst = append(dst, p.lit...)
		case VarClientIP:
			if s.Client.Addr().IsValid() {
				dst = s.Client.Addr().AppendTo(dst)
			}
		case VarHost:
			dst = append(dst, hostOnly(s.Req.Authority())...)
		case VarScheme:
			if s.TLS != nil {
				dst = append(dst, "https"...)
			} else {
				dst = append(dst, "http"...)
			}
		case VarRequestID:
			dst = append(dst, s.RequestID...)
		case VarPath:
			dst = append(dst, splitTarget(s.Req.Method, s.Req.Target).path(s.Req.Target)...)
		}
	}
	return dst
}

// literal returns the value of a template without variables.
func (t Template) literal() string {
	var b strings.Builder
	for _, p := range t.parts {
		b.WriteString(p.lit)
	}
	return b.String()
}

// sample returns the template's value with every variable standing for
// "x", for checking the bytes around them.
func (t Template) sample() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.v == varLiteral {
			b.WriteString(p.lit)
		} else {
			b.WriteString("x")
		}
	}
	return b.String()
}

// usesOnly reports whether every variable of the template is v.
func (t Template) usesOnly(v Variable) bool {
	for _, p := range t.parts {
		if p.v != varLiteral && p.v != v {
			return false
		}
	}
	return true
}
