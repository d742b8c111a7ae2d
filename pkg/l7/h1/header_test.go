package h1

import (
	"strings"
	"testing"
)

func TestHeaderOperations(t *testing.T) {
	type step struct {
		op         func(h *Header)
		wantFields string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"add keeps order and duplicates", []step{
			{func(h *Header) { h.Add("A", "1") }, `A="1";`},
			{func(h *Header) { h.AddBytes([]byte("b"), []byte("2")) }, `A="1";b="2";`},
			{func(h *Header) { h.Add("a", "3") }, `A="1";b="2";a="3";`},
		}},
		{"set replaces all in place of the first", []step{
			{func(h *Header) { h.Add("X", "1"); h.Add("Y", "2"); h.Add("x", "3") }, `X="1";Y="2";x="3";`},
			{func(h *Header) { h.Set("X", "new") }, `X="new";Y="2";`},
			{func(h *Header) { h.SetBytes([]byte("Z"), []byte("z")) }, `X="new";Y="2";Z="z";`},
		}},
		{"del removes all, any case", []step{
			{func(h *Header) { h.Add("X", "1"); h.Add("Y", "2"); h.Add("x", "3") }, `X="1";Y="2";x="3";`},
			{func(h *Header) { h.Del("x") }, `Y="2";`},
			{func(h *Header) { h.DelBytes([]byte("Y")) }, ``},
			{func(h *Header) { h.Del("absent") }, ``},
		}},
		{"reset then reuse", []step{
			{func(h *Header) { h.Add("A", strings.Repeat("a", 100)) }, `A="` + strings.Repeat("a", 100) + `";`},
			{func(h *Header) { h.Reset(); h.Add("B", "b") }, `B="b";`},
		}},
		{"set with a value from the header itself", []step{
			{func(h *Header) { h.Add("A", "1"); h.Add("B", "2") }, `A="1";B="2";`},
			{func(h *Header) { v, _ := h.Get("B"); h.SetBytes([]byte("A"), v) }, `A="2";B="2";`},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h Header
			for i, s := range tc.steps {
				s.op(&h)
				if got := fieldsOf(&h); got != s.wantFields {
					t.Fatalf("step %d: fields %s, want %s", i, got, s.wantFields)
				}
			}
		})
	}
}

func TestHeaderLookups(t *testing.T) {
	var h Header
	h.Add("Content-Type", "text/html")
	h.Add("Set-Cookie", "a=1")
	h.Add("set-cookie", "b=2")
	if v, ok := h.Get("content-TYPE"); !ok || string(v) != "text/html" {
		t.Fatalf("Get = %q, %t", v, ok)
	}
	if v, ok := h.GetBytes([]byte("SET-COOKIE")); !ok || string(v) != "a=1" {
		t.Fatalf("GetBytes = %q, %t (want the first value)", v, ok)
	}
	if _, ok := h.Get("Content-Typ"); ok || h.Has("Content-Typee") || !h.Has("set-COOKIE") {
		t.Fatal("lookups must compare whole names")
	}
	if h.Count("Set-Cookie") != 2 || h.Count("x") != 0 {
		t.Fatalf("Count = %d", h.Count("Set-Cookie"))
	}
	var values []string
	for v := range h.Values("SET-cookie") {
		values = append(values, string(v))
	}
	if strings.Join(values, ",") != "a=1,b=2" {
		t.Fatalf("Values = %v", values)
	}
	var names []string
	for name, value := range h.All() {
		names = append(names, string(name)+"="+string(value))
		if len(names) == 2 {
			break
		}
	}
	if strings.Join(names, ",") != "Content-Type=text/html,Set-Cookie=a=1" {
		t.Fatalf("All with early break = %v", names)
	}
}

func TestHeaderCopyFromAndAppendTo(t *testing.T) {
	var src, dst Header
	src.Add("A", "1")
	src.Add("B", "")
	dst.Add("Old", "x")
	dst.CopyFrom(&src)
	src.Set("A", "changed")
	if got := string(dst.AppendTo(nil)); got != "A: 1\r\nB: \r\n" {
		t.Fatalf("AppendTo after CopyFrom = %q", got)
	}
}

func TestHeaderClipsReturnedSlices(t *testing.T) {
	var h Header
	h.Add("A", "1")
	h.Add("B", "2")
	name, value := h.At(0)
	_ = append(name, "XX"...)
	_ = append(value, "YY"...)
	if got := fieldsOf(&h); got != `A="1";B="2";` {
		t.Fatalf("appending to returned slices changed the header: %s", got)
	}
}

func TestValidFieldNameAndValue(t *testing.T) {
	names := map[string]bool{"X-Forwarded-For": true, "a!#$%&'*+-.^_`|~9": true, "": false, "a b": false, "a:b": false, "a\r": false, "é": false}
	for name, want := range names {
		if got := ValidFieldName([]byte(name)); got != want {
			t.Errorf("ValidFieldName(%q) = %t", name, got)
		}
	}
	values := map[string]bool{"": true, "a b\tc": true, "caf\xe9": true, " lead": false, "trail\t": false, "a\r\nInjected: 1": false, "a\x00": false, "a\x7f": false}
	for value, want := range values {
		if got := ValidFieldValue([]byte(value)); got != want {
			t.Errorf("ValidFieldValue(%q) = %t", value, got)
		}
	}
}

func TestMoveToFront(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want string
	}{
		{0, "a b c d"},
		{2, "c a b d"},
		{3, "d a b c"},
	} {
		var h Header
		for _, n := range []string{"a", "b", "c", "d"} {
			h.Add(n, "v"+n)
		}
		h.MoveToFront(tc.i)
		var got []string
		for i := 0; i < h.Len(); i++ {
			name, value := h.At(i)
			if string(value) != "v"+string(name) {
				t.Fatalf("field %d is %s: %s, its value moved apart from its name", i, name, value)
			}
			got = append(got, string(name))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("MoveToFront(%d) = %v, want %s", tc.i, got, tc.want)
		}
	}
}
