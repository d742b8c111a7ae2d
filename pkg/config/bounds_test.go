package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxLine bounds one line of error output in these tests: a position, a
// key path, a message of a few hundred bytes and two shortened values.
const maxLine = 1024

// checkBounded fails the test unless err is an *Errors whose output has
// lines of at most maxLine bytes, and returns the output.
func checkBounded(t *testing.T, err error) string {
	t.Helper()
	var errs *Errors
	if !errors.As(err, &errs) || len(*errs) == 0 {
		t.Fatalf("want *Errors, got %T %.200v", err, err)
	}
	out := err.Error()
	for i, line := range strings.Split(out, "\n") {
		if len(line) > maxLine {
			t.Errorf("line %d of the output is %d bytes, more than %d: %.300s…", i+1, len(line), maxLine, line)
		}
	}
	return out
}

// TestHugeValuesAreShortenedInErrors puts a long value in every place
// whose error message quotes what the file says, and checks that each
// message shows the value's start, an ellipsis and its length rather
// than the whole value. Before the fix a 20 MiB value was echoed whole.
func TestHugeValuesAreShortenedInErrors(t *testing.T) {
	const n = 100_000
	a := strings.Repeat("a", n)
	// YAML reads digits with underscores as an integer: small is 11,
	// big is 18446744073709551615, too large for an int.
	small := "1" + strings.Repeat("_", n-2) + "1"
	big := "1" + strings.Repeat("_", n-20) + "8446744073709551615"
	// A key over 1024 characters must be written explicitly ("? key").
	key := func(indent, k, v string) string { return indent + "? " + k + "\n" + indent + ": " + v + "\n" }
	// A backend address is refused past 512 bytes, whatever it is; path
	// is one short enough to reach the checks after that one.
	path := strings.Repeat("p", 400)
	const head = "version: 1\n"
	respond := func(extra string) string {
		return "services:\n  - name: r\n    kind: respond\n    listen: [\"127.0.0.1:1\"]\n" + extra
	}
	proxy := func(upstream string) string {
		return "services:\n  - name: p\n    kind: http_proxy\n    listen: [\"127.0.0.1:2\"]\n    upstream: " + upstream + "\n"
	}
	routes := func(route string) string {
		return "upstreams: {api: {backends: [\"127.0.0.1:9\"]}}\nservices:\n  - name: p\n    kind: http_proxy\n    listen: [\"127.0.0.1:2\"]\n    routes: [" + route + "]\n"
	}
	l4 := func(extra string) string {
		return "services:\n  - name: l\n    kind: l4\n    protocol: tcp\n    vip: \"192.0.2.1:80\"\n" + extra
	}
	tests := []struct {
		name, yml string
		size      int // length of the value the message must shorten; 0: n
	}{
		{"unknown key", head + key("", a, "1") + respond(""), 0},
		{"repeated key", head + respond(key("    ", a, "1")+key("    ", a, "2")), 0},
		{"enum value, 20 MiB", head + proxy("{backends: [\"127.0.0.1:9\"], selection: "+strings.Repeat("a", 20<<20)+"}"), 20 << 20},
		{"service kind", head + "services:\n  - {name: x, kind: " + a + "}\n", 0},
		{"service name", head + "services:\n  - {name: " + strings.ToUpper(a) + ", kind: respond, listen: [\"127.0.0.1:1\"]}\n", 0},
		{"service name used twice", head + "services:\n  - {name: " + a + ", kind: respond, listen: [\"127.0.0.1:1\"]}\n  - {name: " + a + ", kind: respond, listen: [\"127.0.0.1:2\"]}\n", 0},
		{"listen address", head + "services:\n  - {name: x, kind: respond, listen: [" + a + "]}\n", 0},
		{"string for an integer", head + "threads: " + a + "\n" + respond(""), 0},
		{"integer out of range", head + "threads: " + big + "\n" + respond(""), 0},
		{"integer for a string", head + "user: " + small + "\n" + respond(""), 0},
		{"seconds out of range", head + "grace_period_seconds: " + big + "\n" + respond(""), 0},
		{"tag", head + "threads: !" + a + " x\n" + respond(""), n + 1},
		{"relative pin_path", head + "bpf: {pin_path: " + a + "}\n" + respond(""), 0},
		{"long upgrade_sock", head + "upgrade_sock: /" + a + "\n" + respond(""), n + 1},
		{"ca_file", head + "ca_file: /" + a + "\n" + respond(""), n + 1},
		{"status", head + respond("    status: "+big+"\n"), 0},
		{"header name", head + respond("    headers:\n"+key("      ", "\""+a+" \"", "x")), n + 1},
		{"header value", head + respond("    headers: {X-A: \""+a+"\\x01\"}\n"), n + 1},
		{"header name in a path", head + respond("    headers:\n"+key("      ", a, "\"\\x01\"")), 0},
		{"TLS version", head + "services:\n  - name: x\n    kind: respond\n    listen: [{addr: \"127.0.0.1:1\", tls: {certs: [], min_version: \"" + a + "\"}}]\n", 0},
		{"certificate path", head + "services:\n  - name: x\n    kind: respond\n    listen: [{addr: \"127.0.0.1:1\", tls: {certs: [{cert: /" + a + ", key: /k}]}}]\n", n + 1},
		{"backend address", head + proxy("{backends: [\""+a+"\"]}"), 0},
		{"backend listed twice", head + proxy("{backends: [/"+path+", /"+path+"]}"), len(path) + 6},
		{"metadata key in a path", head + proxy("\n      backends:\n        - addr: \"127.0.0.1:9\"\n          metadata:\n"+key("            ", a, small)), 0},
		{"hash key", head + proxy("{backends: [\"127.0.0.1:9\"], selection: fnv, hash_key: \"header:"+a+" \"}"), n + 8},
		{"host", head + proxy("{backends: [\"127.0.0.1:9\"], host: \""+a+" \"}"), n + 1},
		{"sni", head + proxy("{backends: [\"127.0.0.1:9\"], tls: {sni: \""+a+"\"}}"), 0},
		{"dns name", head + proxy("{discovery: {type: dns, names: ["+a+"]}}"), 0},
		{"dns server", head + proxy("{discovery: {type: dns, names: [\"x.example:80\"], server: "+a+"}}"), 0},
		{"duration", head + proxy("{backends: [\"127.0.0.1:9\"], timeouts: {connect: "+a+"}}"), 0},
		{"duration out of range", head + proxy("{backends: [\"127.0.0.1:9\"], timeouts: {connect: "+big+"}}"), 0},
		{"duration without a unit", head + proxy("{backends: [\"127.0.0.1:9\"], timeouts: {connect: \""+strings.Repeat("9", n)+"\"}}"), 0},
		{"check path", head + proxy("{backends: [\"127.0.0.1:9\"], health_check: {type: http, path: "+a+"}}"), 0},
		{"check method", head + proxy("{backends: [\"127.0.0.1:9\"], health_check: {type: http, method: "+a+"}}"), 0},
		{"check expect", head + proxy("{backends: [\"127.0.0.1:9\"], health_check: {type: http, expect: \""+a+"\"}}"), 0},
		{"l4 protocol", head + "services:\n  - {name: l, kind: l4, protocol: " + a + ", vip: \"192.0.2.1:80\", upstream: {backends: [\"192.0.2.2:80\"]}}\n", 0},
		{"vip", head + "services:\n  - {name: l, kind: l4, protocol: tcp, vip: " + a + ", upstream: {backends: [\"192.0.2.2:80\"]}}\n", 0},
		{"interface", head + l4("    interface: "+a+"\n    upstream: {backends: [\"192.0.2.2:80\"]}\n"), 0},
		{"unix backend of an l4 service", head + l4("    upstream: {backends: [\"unix:/"+path+"\"]}\n"), len(path) + 6},
		{"admin address", head + "admin: {listen: " + a + "}\n" + respond(""), 0},
		{"admin unix socket", head + "admin: {listen: \"unix:/" + a + "\"}\n" + respond(""), n + 1},
		{"sticky secret file", head + proxy("{backends: [\"127.0.0.1:9\"], sticky: {cookie: a, secret_file: /"+a+"}}"), n + 1},
		{"admin token file", head + "admin: {listen: \"127.0.0.1:9\", token_file: /" + a + "}\n" + respond(""), n + 1},
		{"access log field", head + respond("    access_log: {path: stdout, format: \"$"+a+"\"}\n"), 0},
		{"access log format", head + respond("    access_log: {path: stdout, format: "+a+"}\n"), 0},
		{"unknown anchor", head + "threads: *" + a + "\n", 0},
		{"route path not normal", head + routes("{match: {path: {prefix: \"/"+a+"//\"}}, upstream: api}"), n + 3},
		{"rewrite path", head + routes("{upstream: api, rewrite: {replace_prefix: /a, with: \"/"+a+"?\"}}"), n + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(tt.yml))
			out := checkBounded(t, err)
			size := tt.size
			if size == 0 {
				size = n
			}
			if want := fmt.Sprintf("…\" (%d bytes)", size); !strings.Contains(out, want) && !strings.Contains(out, fmt.Sprintf("… (%d bytes)", size)) {
				t.Errorf("output does not show the value shortened, ending %s:\n%.2000s", want, out)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", maxQuoted+1)
	accents := strings.Repeat("é", maxQuoted) // 2 bytes each
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"abc", `"abc"`},
		{"a\nb\x00", `"a\nb\x00"`},
		{long[:maxQuoted], strconv.Quote(long[:maxQuoted])},
		{long, `"` + long[:maxQuoted] + `…" (` + strconv.Itoa(maxQuoted+1) + ` bytes)`},
		{accents, `"` + accents[:maxQuoted] + `…" (` + strconv.Itoa(2*maxQuoted) + ` bytes)`},
		{"a" + accents, `"a` + accents[:maxQuoted-2] + `…" (` + strconv.Itoa(2*maxQuoted+1) + ` bytes)`}, // no half character
		{strings.Repeat("\xff", 100), strconv.Quote(strings.Repeat("\xff", maxQuoted)+"…") + " (100 bytes)"},
	}
	for _, tt := range tests {
		got := quote(tt.in)
		if got != tt.want {
			t.Errorf("quote(%.80q) = %s, want %s", tt.in, got, tt.want)
		}
		if s, err := strconv.Unquote(strings.SplitN(got, " (", 2)[0]); err != nil || (utf8.ValidString(tt.in) && !utf8.ValidString(s)) {
			t.Errorf("quote(%.80q) = %s: not a quoted string of whole characters (%v)", tt.in, got, err)
		}
	}
}

// TestValidKeysListedOncePerMapping gives 5,000 unknown keys: the valid
// keys are listed once, and the output is bounded. Before the fix every
// line listed them, 1.37 MB in all.
func TestValidKeysListedOncePerMapping(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "k%04d: 1\n", i)
	}
	b.WriteString("services: [{name: a, kind: respond, listen: [\"127.0.0.1:1\"]}]\n")
	_, err := Parse("w.yaml", []byte(b.String()))
	out := checkBounded(t, err)
	if len(out) > 16<<10 {
		t.Errorf("output is %d bytes, more than 16 KiB", len(out))
	}
	if got := strings.Count(out, "valid keys: version, threads"); got != 1 {
		t.Errorf("the valid keys are listed %d times, want once", got)
	}
	lines := strings.Split(out, "\n")
	if want := `w.yaml:2:1: unknown key "k0000"; valid keys: version, threads,`; !strings.HasPrefix(lines[0], want) {
		t.Errorf("first line %q, want it to start %q", lines[0], want)
	}
	if want := `w.yaml:3:1: unknown key "k0001"; see 2:1 for the valid keys`; lines[1] != want {
		t.Errorf("second line %q, want %q", lines[1], want)
	}
	if len(lines) != maxShownErrors+1 {
		t.Errorf("%d lines, want %d errors and a last line counting the rest", len(lines), maxShownErrors)
	}
	if want := fmt.Sprintf("w.yaml: … and %d more errors", 5000-maxShownErrors); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
	var errs *Errors
	if errors.As(err, &errs); len(*errs) != 5000 {
		t.Errorf("*Errors holds %d errors, want all 5000", len(*errs))
	}
}

// TestErrorsOutputIsCapped checks that Errors prints at most
// maxShownErrors errors and counts the rest.
func TestErrorsOutputIsCapped(t *testing.T) {
	for _, count := range []int{1, maxShownErrors, maxShownErrors + 1, 1000} {
		t.Run(strconv.Itoa(count), func(t *testing.T) {
			errs := make(Errors, count)
			for i := range errs {
				errs[i] = Error{File: "w.yaml", Line: i + 1, Col: 1, Msg: "bad"}
			}
			lines := strings.Split(errs.Error(), "\n")
			shown := min(count, maxShownErrors)
			if got := len(lines); count <= maxShownErrors && got != count || count > maxShownErrors && got != shown+1 {
				t.Fatalf("%d errors print as %d lines", count, got)
			}
			if lines[shown-1] != fmt.Sprintf("w.yaml:%d:1: bad", shown) {
				t.Errorf("line %d is %q", shown, lines[shown-1])
			}
			if count > maxShownErrors {
				want := fmt.Sprintf("w.yaml: … and %d more errors", count-shown)
				if count-shown == 1 {
					want = "w.yaml: … and 1 more error"
				}
				if lines[shown] != want {
					t.Errorf("last line %q, want %q", lines[shown], want)
				}
			}
		})
	}
}
