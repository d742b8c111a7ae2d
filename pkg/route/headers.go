package route

import (
	"errors"
	"fmt"
	"strings"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// rules is compiled HeaderRules.
type rules struct {
	remove   []string
	set, add []headerValue
	// constant says no value has a variable: applying the rules needs
	// neither the request nor a buffer.
	constant bool
}

// headerValue is a compiled HeaderValue.
type headerValue struct {
	name  string
	nameB []byte
	tmpl  Template
	// literal is the value when constant.
	literal  string
	constant bool
}

func (r *rules) empty() bool { return len(r.remove)+len(r.set)+len(r.add) == 0 }

// apply changes h by the rules: Remove, then Set, then Add. Values with
// variables are expanded in buf, which is returned for reuse.
func (r *rules) apply(h *h1.Header, s *l7.Session, buf []byte) []byte {
	for _, name := range r.remove {
		h.Del(name)
	}
	for i := range r.set {
		hv := &r.set[i]
		if hv.constant {
			h.Set(hv.name, hv.literal)
			continue
		}
		buf = hv.tmpl.AppendTo(buf[:0], s)
		h.SetValue(hv.name, buf)
	}
	for i := range r.add {
		hv := &r.add[i]
		if hv.constant {
			h.Add(hv.name, hv.literal)
			continue
		}
		buf = hv.tmpl.AppendTo(buf[:0], s)
		h.AddBytes(hv.nameB, buf)
	}
	return buf
}

// compileRules checks header rules and compiles them. request says they
// change the request sent upstream, where Host must stay one valid field.
func compileRules(hr *HeaderRules, request bool) (rules, error) {
	r := rules{constant: true}
	for _, name := range hr.Remove {
		if err := checkRuleName(name); err != nil {
			return r, fmt.Errorf("remove: %w", err)
		}
		if request && strings.EqualFold(name, "Host") {
			return r, errors.New("remove: Host cannot be removed: an HTTP/1.1 request must have one")
		}
		r.remove = append(r.remove, name)
	}
	for _, hv := range hr.Set {
		v, err := compileValue(hv, request)
		if err != nil {
			return r, fmt.Errorf("set: %w", err)
		}
		r.set = append(r.set, v)
		r.constant = r.constant && v.constant
	}
	for _, hv := range hr.Add {
		if request && strings.EqualFold(hv.Name, "Host") {
			return r, errors.New("add: a second Host field makes the request invalid; set Host instead")
		}
		v, err := compileValue(hv, request)
		if err != nil {
			return r, fmt.Errorf("add: %w", err)
		}
		r.add = append(r.add, v)
		r.constant = r.constant && v.constant
	}
	return r, nil
}

func compileValue(hv HeaderValue, request bool) (headerValue, error) {
	v := headerValue{name: hv.Name, nameB: []byte(hv.Name), tmpl: hv.Value, constant: hv.Value.Constant()}
	if err := checkRuleName(hv.Name); err != nil {
		return v, err
	}
	if sample := hv.Value.sample(); sample != "" && !h1.ValidFieldValue([]byte(sample)) {
		return v, fmt.Errorf("%s: value %q has control characters or leading or trailing spaces", hv.Name, hv.Value.String())
	}
	if request && strings.EqualFold(hv.Name, "Host") {
		if !hv.Value.usesOnly(VarHost) || !validHostBytes(hv.Value.sample()) {
			return v, fmt.Errorf("Host: %q is not a host[:port]; it may use {host} only", hv.Value.String())
		}
	}
	if v.constant {
		v.literal = hv.Value.literal()
	}
	return v, nil
}

// checkRuleName refuses names a header rule must not touch: the framing
// and hop-by-hop fields, which the proxy writes itself for each hop.
func checkRuleName(name string) error {
	b := []byte(name)
	switch {
	case !h1.ValidFieldName(b):
		return fmt.Errorf("%q is not a field name", name)
	case h1.IsHopByHop(b) || strings.EqualFold(name, "Content-Length"):
		return fmt.Errorf("%s is a framing or hop-by-hop field, which the proxy sets itself for each hop", name)
	}
	return nil
}

// validHostBytes reports whether s is a non-empty host[:port] made of
// name, IPv6 literal and port bytes.
func validHostBytes(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
