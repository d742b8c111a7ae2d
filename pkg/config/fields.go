package config

import (
	"cmp"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weir-lb/weir/internal/suggest"
)

// YAML core schema tags, as yaml.Node.ShortTag reports them.
const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagNull  = "!!null"
	tagMerge = "!!merge"
)

// resolve follows an alias to the node it names. yaml.v3 never makes an
// alias point at another alias, so one step is enough.
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// describe names a value's type and value the way a user reads it in the
// file, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch tag := n.ShortTag(); tag {
	case tagStr:
		return "string " + quote(n.Value)
	case tagInt:
		return "integer " + clip(n.Value)
	case tagFloat:
		return "number " + clip(n.Value)
	case tagBool:
		return "boolean " + clip(n.Value)
	case tagNull:
		return "an empty value"
	default:
		return clip(tag) + " " + quote(n.Value)
	}
}

// wrongType records that n is not of the wanted type.
func (p *parser) wrongType(n *yaml.Node, path, want string) {
	p.errorf(n, path, "want %s, got %s", want, describe(n))
}

// mapping is a YAML mapping whose keys have been checked against the keys
// known at its place in the file (or any keys, for a free-form map such
// as headers). Merge keys ("<<: *anchor") are expanded, explicit keys
// taking precedence, as YAML specifies. Every mapping of the file is read
// through one, so that merges work everywhere.
type mapping struct {
	p    *parser
	path string
	node *yaml.Node
	keys map[string]*yaml.Node
	vals map[string]*yaml.Node
	// order holds the keys in the order they were collected: the mapping's
	// own, then those merged in.
	order []string
	// extensions makes keys starting with extensionPrefix ignored.
	extensions bool
	// suggested holds the known keys offered for misspelt ones; a
	// suggested key is not also reported missing.
	suggested map[string]bool
	// unknown holds the unknown keys found, reported once the mapping and
	// its merges are collected.
	unknown []*yaml.Node
}

// extensionPrefix starts the top-level keys weir ignores, as Docker
// Compose does, so that a file can hold YAML anchors to merge elsewhere.
const extensionPrefix = "x-"

// mapping checks that n is a mapping with only known keys, reporting
// every unknown or repeated key; known == nil allows any key. It returns
// nil when n is not a mapping.
func (p *parser) mapping(n *yaml.Node, path string, known []string) *mapping {
	return p.newMapping(n, path, known, false)
}

// newMapping is mapping, optionally ignoring keys that start with
// extensionPrefix.
func (p *parser) newMapping(n *yaml.Node, path string, known []string, extensions bool) *mapping {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, "a mapping")
		return nil
	}
	m := &mapping{
		p: p, path: path, node: n, extensions: extensions,
		keys: make(map[string]*yaml.Node), vals: make(map[string]*yaml.Node),
	}
	m.collect(n, known)
	m.reportUnknown(known)
	return m
}

// collect adds the pairs of n that are not yet present, then the pairs of
// the mappings n merges in.
func (m *mapping) collect(n *yaml.Node, known []string) {
	local := make(map[string]*yaml.Node)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := resolve(n.Content[i]), n.Content[i+1]
		if key.ShortTag() == tagMerge {
			merges = append(merges, val)
			continue
		}
		if key.Kind != yaml.ScalarNode {
			m.p.errorf(key, m.path, "a key must be a plain name, not %s", describe(key))
			continue
		}
		name := key.Value
		if first, dup := local[name]; dup {
			m.p.errorf(key, m.path, "key %s is repeated (first at %s); remove one of them", quote(name), m.p.pos(first))
			continue
		}
		local[name] = key
		if _, done := m.keys[name]; done {
			continue // overridden by the mapping that merged this one
		}
		if m.extensions && strings.HasPrefix(name, extensionPrefix) {
			continue
		}
		if known != nil && !slices.Contains(known, name) {
			m.unknown = append(m.unknown, key)
			continue
		}
		m.keys[name] = key
		m.vals[name] = resolve(val)
		m.order = append(m.order, name)
	}
	for _, merged := range merges {
		m.merge(resolve(merged), known)
	}
}

// reportUnknown reports the unknown keys of the mapping, suggesting the
// closest known key for each. The valid keys are listed once, at the
// first (in the file) unknown key with no suggestion; the others refer to
// it, so that many unknown keys do not repeat the list many times.
func (m *mapping) reportUnknown(known []string) {
	slices.SortStableFunc(m.unknown, func(a, b *yaml.Node) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	var listed *yaml.Node
	for _, key := range m.unknown {
		switch s, ok := suggest.Closest(key.Value, known); {
		case ok:
			if m.suggested == nil {
				m.suggested = make(map[string]bool)
			}
			m.suggested[s] = true
			m.p.errorf(key, m.path, "unknown key %s; did you mean %s?", quote(key.Value), quote(s))
		case listed == nil:
			listed = key
			m.p.errorf(key, m.path, "unknown key %s; valid keys: %s", quote(key.Value), strings.Join(known, ", "))
		default:
			m.p.errorf(key, m.path, "unknown key %s; see %d:%d for the valid keys", quote(key.Value), listed.Line, listed.Column)
		}
	}
}

// merge expands the value of a merge key: a mapping or a list of them.
func (m *mapping) merge(n *yaml.Node, known []string) {
	m.p.merges++
	if m.p.merges > maxMerges {
		if m.p.merges == maxMerges+1 { // report the overflow once
			m.p.errorf(n, m.path, "more than %d merges (\"<<\"); simplify the anchors", maxMerges)
		}
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		m.collect(n, known)
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if item = resolve(item); item.Kind == yaml.MappingNode {
				m.collect(item, known)
			} else {
				m.p.wrongType(item, m.path+".<<", "a mapping to merge")
			}
		}
	default:
		m.p.wrongType(n, m.path+".<<", "a mapping or a list of mappings to merge")
	}
}

// at returns the path of key inside the mapping. A key from a free-form
// map is the file's text, so it is clipped.
func (m *mapping) at(key string) string {
	if m.path == "" {
		return clip(key)
	}
	return m.path + "." + clip(key)
}

// has reports whether key is present.
func (m *mapping) has(key string) bool { return m.vals[key] != nil }

// get returns the value of key, or nil when absent.
func (m *mapping) get(key string) *yaml.Node { return m.vals[key] }

// missing records that a required key is absent, with a hint on what to
// write, unless a misspelling of it was already reported.
func (m *mapping) missing(key, hint string) {
	if m.suggested[key] {
		return
	}
	m.p.errorf(m.node, m.at(key), "missing; %s", hint)
}

// forbid records, when key is present, that it is not allowed here.
func (m *mapping) forbid(key, why string) {
	if k := m.keys[key]; k != nil {
		m.p.errorf(k, m.at(key), "%s", why)
	}
}

// str reads a string key into dst. It reports whether the key was present
// and valid.
func (m *mapping) str(key string, dst *string) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	s, ok := m.p.str(n, m.at(key))
	if ok {
		*dst = s
	}
	return ok
}

// nonEmpty reads a string key that must not be empty.
func (m *mapping) nonEmpty(key string, dst *string) bool {
	var s string
	if !m.str(key, &s) {
		return false
	}
	if s == "" {
		m.p.errorf(m.get(key), m.at(key), "must not be empty; remove the key to use the default")
		return false
	}
	*dst = s
	return true
}

// file reads a non-empty path key, resolving a relative path against the
// configuration file's directory.
func (m *mapping) file(key string, dst *string) bool {
	var s string
	if !m.nonEmpty(key, &s) {
		return false
	}
	*dst = m.p.resolvePath(s)
	return true
}

// resolvePath makes a relative path relative to the configuration file.
func (p *parser) resolvePath(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(p.dir, path)
}

// integer reads an integer key into dst, which must be within [lo, hi].
func (m *mapping) integer(key string, dst *int, lo, hi int) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	v, ok := m.p.integer(n, m.at(key), "an integer")
	if !ok {
		return false
	}
	if v < lo || v > hi {
		m.p.errorf(n, m.at(key), "must be %s, got %d", rangeText(lo, hi), v)
		return false
	}
	*dst = v
	return true
}

// rangeText words an inclusive integer range for error messages.
func rangeText(lo, hi int) string {
	if hi == math.MaxInt {
		return fmt.Sprintf("at least %d", lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// seconds reads a non-negative whole number of seconds, for the keys
// whose name ends in _seconds.
func (m *mapping) seconds(key string, dst *time.Duration) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	v, ok := m.p.integer(n, m.at(key), "a whole number of seconds")
	if !ok {
		return false
	}
	if v < 0 || int64(v) > maxSeconds {
		m.p.errorf(n, m.at(key), "must be 0 to %d seconds, got %d", maxSeconds, v)
		return false
	}
	*dst = time.Duration(v) * time.Second
	return true
}

// maxSeconds is the largest number of seconds a time.Duration holds.
const maxSeconds = int64(math.MaxInt64 / time.Second)

// boolean reads a true/false key into dst.
func (m *mapping) boolean(key string, dst *bool) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tagBool {
		m.p.wrongType(n, m.at(key), "true or false")
		return false
	}
	*dst = strings.EqualFold(n.Value, "true")
	return true
}

// duration reads a duration key into dst. A duration is a Go duration
// string ("1s", "250ms") or a whole number of seconds. With positive set,
// zero is refused too.
func (m *mapping) duration(key string, dst *time.Duration, positive bool) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	d, ok := m.p.duration(n, m.at(key))
	if !ok {
		return false
	}
	if positive && d == 0 {
		m.p.errorf(n, m.at(key), "must be greater than 0")
		return false
	}
	*dst = d
	return true
}

// enumField reads a key whose value is one of allowed into dst, suggesting
// the closest choice for a misspelt value.
func enumField[T ~string](m *mapping, key string, dst *T, allowed ...T) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	s, ok := m.p.str(n, m.at(key))
	if !ok {
		return false
	}
	choices := make([]string, len(allowed))
	for i, a := range allowed {
		choices[i] = string(a)
		if s == string(a) {
			*dst = a
			return true
		}
	}
	m.p.errorf(n, m.at(key), "unknown value %s; %s", quote(s), didYouMean(s, choices, "values"))
	return false
}

// stringMap reads a mapping of strings to strings, checking each key and
// value with check (which returns a problem description, or ""). It is
// read through the same mapping walker as every other mapping, so merge
// keys work in it and repeated keys are reported the same way.
func (m *mapping) stringMap(key string, check func(k, v string) (badKey, badValue string)) map[string]string {
	n := m.get(key)
	if n == nil {
		return nil
	}
	path := m.at(key)
	if n.Kind != yaml.MappingNode {
		m.p.wrongType(n, path, "a mapping of names to strings")
		return nil
	}
	sm := m.p.mapping(n, path, nil)
	out := make(map[string]string, len(sm.order))
	for _, name := range sm.order {
		k, v := sm.keys[name], sm.vals[name]
		_, okName := m.p.str(k, path)
		value, okValue := m.p.str(v, sm.at(name))
		if !okName || !okValue {
			continue
		}
		badKey, badValue := "", ""
		if check != nil {
			badKey, badValue = check(name, value)
		}
		if badKey != "" {
			m.p.errorf(k, path, "%s", badKey)
			continue
		}
		if badValue != "" {
			m.p.errorf(v, sm.at(name), "%s", badValue)
			continue
		}
		out[name] = value
	}
	return out
}

// list returns the items of a list key. A missing key yields nil, false
// without an error; a non-list is reported.
func (m *mapping) list(key, example string) ([]*yaml.Node, bool) {
	n := m.get(key)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		m.p.errorf(n, m.at(key), "want a list, got %s; write it as %s", describe(n), example)
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, item := range n.Content {
		items[i] = resolve(item)
	}
	return items, true
}

// str reads a string scalar. A number or boolean where a string is wanted
// is refused rather than converted, with a hint to quote it, so that a
// value never silently changes form (0755 would become 493).
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == tagStr {
		return n.Value, true
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() != tagNull {
		p.errorf(n, path, "want a string, got %s; put it in quotes (%s) to make it a string", describe(n), quote(n.Value))
		return "", false
	}
	p.wrongType(n, path, "a string")
	return "", false
}

// integer reads an integer scalar; want names the expected value in the
// error message.
func (p *parser) integer(n *yaml.Node, path, want string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tagInt {
		p.wrongType(n, path, want)
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		p.errorf(n, path, "integer %s is out of range", clip(n.Value))
		return 0, false
	}
	return v, true
}

// durationWant describes the accepted duration forms in error messages.
const durationWant = `a duration such as "1s" or "250ms", or a whole number of seconds`

// duration reads a duration: a Go duration string or whole seconds.
func (p *parser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		p.wrongType(n, path, durationWant)
		return 0, false
	}
	var d time.Duration
	switch n.ShortTag() {
	case tagInt:
		secs, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || secs > maxSeconds || secs < -maxSeconds {
			p.errorf(n, path, "%s seconds is out of range", clip(n.Value))
			return 0, false
		}
		d = time.Duration(secs) * time.Second
	case tagStr:
		var err error
		if d, err = time.ParseDuration(n.Value); err != nil {
			p.errorf(n, path, "want %s, got %s%s", durationWant, describe(n), unitHint(n.Value))
			return 0, false
		}
	default:
		p.wrongType(n, path, durationWant)
		return 0, false
	}
	if d < 0 {
		p.errorf(n, path, "must not be negative, got %s", clip(n.Value))
		return 0, false
	}
	return d, true
}

// unitHint suggests a unit for a quoted bare number such as "10".
func unitHint(s string) string {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return fmt.Sprintf(" (missing unit: did you mean %s?)", quote(s+"s"))
	}
	return ""
}
