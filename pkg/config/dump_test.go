package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
)

// dump renders v as indented JSON with struct fields in declaration order,
// map keys sorted, durations as "1.5s", positions as FILE:LINE:COL and
// access log formats as written, so that golden files are stable and
// readable.
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
)

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
	case reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint16:
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
