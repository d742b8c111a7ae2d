package route

import (
	"fmt"
	"strings"
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
