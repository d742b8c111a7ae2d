package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/dataplane"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/limit"
	"github.com/weir-lb/weir/pkg/retry"
	"github.com/weir-lb/weir/pkg/route"
)

// dump renders v as indented JSON with struct fields in declaration order,
// map keys sorted, durations as "1.5s", positions as FILE:LINE:COL, and
// parsed values (access log formats, hash keys, status sets, regular
// expressions, templates, prefixes) as written, so that golden files are
// stable and readable.
func dump(v any) string {
	var b bytes.Buffer
	writeValue(&b, reflect.ValueOf(v), 0)
	b.WriteByte('\n')
	return b.String()
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	positionType = reflect.TypeFor[Position]()
	formatType   = reflect.TypeFor[*accesslog.Format]()

	// asText are the types dumped as the string a function makes of them.
	asText = map[reflect.Type]func(reflect.Value) string{
		reflect.TypeFor[l7.HashKey]():          func(v reflect.Value) string { return formatHashKey(v.Interface().(l7.HashKey)) },
		reflect.TypeFor[lb.StatusSet]():        func(v reflect.Value) string { return v.Interface().(lb.StatusSet).String() },
		reflect.TypeFor[*regexp.Regexp]():      func(v reflect.Value) string { return v.Interface().(*regexp.Regexp).String() },
		reflect.TypeFor[route.Template]():      func(v reflect.Value) string { return v.Interface().(route.Template).String() },
		reflect.TypeFor[netip.Prefix]():        func(v reflect.Value) string { return v.Interface().(netip.Prefix).String() },
		reflect.TypeFor[[]byte]():              func(v reflect.Value) string { return string(v.Bytes()) },
		reflect.TypeFor[route.PathKind]():      func(v reflect.Value) string { return pathKinds[v.Interface().(route.PathKind)] },
		reflect.TypeFor[route.ValueKind]():     func(v reflect.Value) string { return valueKinds[v.Interface().(route.ValueKind)] },
		reflect.TypeFor[compress.Encoding]():   func(v reflect.Value) string { return v.Interface().(compress.Encoding).String() },
		reflect.TypeFor[netip.Addr]():          func(v reflect.Value) string { return v.Interface().(netip.Addr).String() },
		reflect.TypeFor[netip.AddrPort]():      func(v reflect.Value) string { return v.Interface().(netip.AddrPort).String() },
		reflect.TypeFor[dataplane.PortRange](): func(v reflect.Value) string { return v.Interface().(dataplane.PortRange).String() },
		reflect.TypeFor[limit.Rate]():          func(v reflect.Value) string { return v.Interface().(limit.Rate).String() },
		reflect.TypeFor[retry.Policy]():        func(v reflect.Value) string { return formatRetry(v.Addr().Interface().(*retry.Policy)) },
	}
	pathKinds  = map[route.PathKind]string{route.PathAny: "any", route.PathExact: "exact", route.PathPrefix: "prefix", route.PathRegex: "regex"}
	valueKinds = map[route.ValueKind]string{route.ValuePresent: "present", route.ValueExact: "exact", route.ValueRegex: "regex"}
	headerType = reflect.TypeFor[h1.Header]()
)

// formatRetry writes a retry policy's settings (not its counters).
func formatRetry(p *retry.Policy) string {
	s := fmt.Sprintf("on=%s attempts=%d per_try_timeout=%v", p.On, p.Attempts, p.PerTryTimeout)
	if b := p.Budget; b != nil {
		s += fmt.Sprintf(" budget=%d%%,min=%d", b.Percent, b.MinConcurrency)
	}
	return s
}

// formatHashKey writes a hash key as the configuration does.
func formatHashKey(k l7.HashKey) string {
	for name, kind := range hashKeyKindsByName {
		if kind == k.Kind && k.Name == "" {
			return name
		}
		if kind == k.Kind {
			return name + ":" + k.Name
		}
	}
	return ""
}

// writeValue writes one value at the given indentation depth.
func writeValue(b *bytes.Buffer, v reflect.Value, depth int) {
	switch {
	case v.Type() == durationType:
		writeJSON(b, time.Duration(v.Int()).String())
		return
	case v.Type() == positionType:
		writeJSON(b, v.Interface().(Position).String())
		return
	case v.Type() == formatType && !v.IsNil():
		writeJSON(b, v.Interface().(*accesslog.Format).String())
		return
	case v.Type() == headerType:
		h := v.Interface().(h1.Header)
		fields := make([]string, h.Len())
		for i := range fields {
			name, value := h.At(i)
			fields[i] = string(name) + ": " + string(value)
		}
		writeArray(b, reflect.ValueOf(fields), depth)
		return
	case asText[v.Type()] != nil && !(v.Kind() == reflect.Pointer && v.IsNil()) && !(v.Kind() == reflect.Slice && v.IsNil()):
		writeJSON(b, asText[v.Type()](v))
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("null")
			return
		}
		writeValue(b, v.Elem(), depth)
	case reflect.Struct:
		fields := make([]string, v.NumField())
		for i := range fields {
			fields[i] = v.Type().Field(i).Name
		}
		writeObject(b, fields, func(i int) reflect.Value { return v.Field(i) }, depth)
	case reflect.Map:
		if v.IsNil() {
			b.WriteString("null")
			return
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		writeObject(b, keys, func(i int) reflect.Value { return v.MapIndex(reflect.ValueOf(keys[i]).Convert(v.Type().Key())) }, depth)
	case reflect.Slice:
		writeArray(b, v, depth)
	case reflect.String:
		writeJSON(b, v.String())
	case reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint16, reflect.Uint32:
		fmt.Fprint(b, v.Interface())
	default:
		panic("dump: unhandled kind " + v.Kind().String())
	}
}

// writeObject writes a JSON object whose i-th member is names[i]: value(i).
func writeObject(b *bytes.Buffer, names []string, value func(int) reflect.Value, depth int) {
	if len(names) == 0 {
		b.WriteString("{}")
		return
	}
	b.WriteString("{\n")
	for i, name := range names {
		b.WriteString(strings.Repeat("  ", depth+1))
		writeJSON(b, name)
		b.WriteString(": ")
		writeValue(b, value(i), depth+1)
		if i < len(names)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat("  ", depth) + "}")
}

// writeArray writes a slice; nil is null, so that golden files tell an
// absent list from an empty one.
func writeArray(b *bytes.Buffer, v reflect.Value, depth int) {
	if v.IsNil() {
		b.WriteString("null")
		return
	}
	if v.Len() == 0 {
		b.WriteString("[]")
		return
	}
	b.WriteString("[\n")
	for i := range v.Len() {
		b.WriteString(strings.Repeat("  ", depth+1))
		writeValue(b, v.Index(i), depth+1)
		if i < v.Len()-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat("  ", depth) + "]")
}

// writeJSON writes s as a JSON string.
func writeJSON(b *bytes.Buffer, s string) {
	enc, err := json.Marshal(s)
	if err != nil {
		panic(err) // a Go string always marshals
	}
	b.Write(enc)
}
