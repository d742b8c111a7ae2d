package accesslog

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestFormatGolden(t *testing.T) {
	every := "$time_local|$time_iso|$client|$client_ip|$client_port|$method|$host|$path|$protocol|$request|" +
		"$status|$bytes_received|$bytes_sent|$duration|$upstream|$upstream_connect|$upstream_first_byte|" +
		"$attempts|$tls_version|$sni|$request_id|$user_agent|$referer|$reason|$service|$route"
	minimal := &Record{Start: testStart}
	tests := []struct {
		name   string
		format string
		r      *Record
		want   string
	}{
		{"combined", "combined", sampleRecord(),
			`192.0.2.10 - - [14/Mar/2026:15:09:26 +0100] "GET /cart?item=42 HTTP/1.1" 200 5120 "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)"`},
		{"combined, nothing known", "combined", minimal,
			`- - - [14/Mar/2026:15:09:26 +0100] "-" 000 0 "-" "-"`},
		{"json", "json", sampleRecord(),
			`{"time":"2026-03-14T15:09:26.535+01:00","service":"shop","route":"cart","client_ip":"192.0.2.10","client_port":51234,` +
				`"method":"GET","host":"shop.example","path":"/cart?item=42","protocol":"HTTP/1.1","status":200,` +
				`"bytes_received":17,"bytes_sent":5120,"duration":0.012345,"upstream":"10.0.0.7:8080",` +
				`"upstream_connect":0.001200,"upstream_first_byte":0.010000,"attempts":1,"tls_version":"TLSv1.3",` +
				`"sni":"shop.example","request_id":"7f3a9c","user_agent":"Mozilla/5.0 (X11; Linux x86_64)",` +
				`"referer":"https://shop.example/","reason":""}`},
		{"json, nothing known", "json", minimal,
			`{"time":"2026-03-14T15:09:26.535+01:00","service":"","route":"","client_ip":"","client_port":0,` +
				`"method":"","host":"","path":"","protocol":"","status":0,` +
				`"bytes_received":0,"bytes_sent":0,"duration":0.000000,"upstream":"",` +
				`"upstream_connect":0.000000,"upstream_first_byte":0.000000,"attempts":0,"tls_version":"",` +
				`"sni":"","request_id":"","user_agent":"",` +
				`"referer":"","reason":""}`},
		{"template", "$time_iso $client $method $host$path $status $duration $request_id", sampleRecord(),
			`2026-03-14T15:09:26.535+01:00 192.0.2.10:51234 GET shop.example/cart?item=42 200 0.012345 7f3a9c`},
		{"every field", every, sampleRecord(),
			`14/Mar/2026:15:09:26 +0100|2026-03-14T15:09:26.535+01:00|192.0.2.10:51234|192.0.2.10|51234|GET|` +
				`shop.example|/cart?item=42|HTTP/1.1|GET /cart?item=42 HTTP/1.1|200|17|5120|0.012345|10.0.0.7:8080|` +
				`0.001200|0.010000|1|TLSv1.3|shop.example|7f3a9c|Mozilla/5.0 (X11; Linux x86_64)|https://shop.example/|-|shop|cart`},
		{"every field, nothing known", every, minimal,
			`14/Mar/2026:15:09:26 +0100|2026-03-14T15:09:26.535+01:00|-|-|-|-|-|-|-|-|000|0|0|0.000000|-|` +
				`0.000000|0.000000|0|-|-|-|-|-|-|-|-`},
		{"braces, dollars and tabs", "${status}_x\t$$${host}$$", sampleRecord(), "200_x\t$shop.example$"},
		{"literal text only around fields", "[$status]", minimal, "[000]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(mustParse(t, tt.format).Append(nil, tt.r))
			if got != tt.want+"\n" {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestFormatString(t *testing.T) {
	for _, s := range []string{"combined", "json", "$status ${host}x $$"} {
		if got := mustParse(t, s).String(); got != s {
			t.Errorf("ParseFormat(%q).String() = %q", s, got)
		}
	}
}

func TestAppendKeepsDst(t *testing.T) {
	got := string(mustParse(t, "$status").Append([]byte("before "), sampleRecord()))
	if got != "before 200\n" {
		t.Errorf("got %q", got)
	}
}

func TestClientAddresses(t *testing.T) {
	f := mustParse(t, "$client $client_ip $client_port")
	tests := []struct {
		client string
		want   string
	}{
		{"192.0.2.10:51234", "192.0.2.10:51234 192.0.2.10 51234"},
		{"[2001:db8::1]:443", "[2001:db8::1]:443 2001:db8::1 443"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1:80 192.0.2.1 80"}, // a dual-stack listener's IPv4 client
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80 fe80::1%eth0 80"},
		{"[fe80::1%a\"b\n]:80", `[fe80::1%a\x22b\x0A]:80 fe80::1%a\x22b\x0A 80`},
	}
	for _, tt := range tests {
		r := &Record{Client: netip.MustParseAddrPort(tt.client)}
		if got := string(f.Append(nil, r)); got != tt.want+"\n" {
			t.Errorf("%s: got %q, want %q", tt.client, got, tt.want)
		}
	}
}

func TestRequestLine(t *testing.T) {
	f := mustParse(t, `"$request"`)
	tests := []struct {
		method, target, proto string
		want                  string
	}{
		{"GET", "/", "HTTP/1.1", `"GET / HTTP/1.1"`},
		{"POST", "/api?q=1", "HTTP/2.0", `"POST /api?q=1 HTTP/2.0"`},
		{"GET", "", "", `"GET - -"`}, // the parts known of a request cut short
		{"", "", "", `"-"`},
		{"G\"ET", "/a b", "HTTP/1.1", `"G\x22ET /a b HTTP/1.1"`},
	}
	for _, tt := range tests {
		r := &Record{Method: []byte(tt.method), Target: []byte(tt.target), Proto: tt.proto}
		if got := string(f.Append(nil, r)); got != tt.want+"\n" {
			t.Errorf("%q %q %q: got %q, want %q", tt.method, tt.target, tt.proto, got, tt.want)
		}
	}
}

func TestSecondsAndStatus(t *testing.T) {
	f := mustParse(t, "$duration $status")
	tests := []struct {
		d      time.Duration
		status int
		want   string
	}{
		{0, 0, "0.000000 000"},
		{time.Nanosecond, 200, "0.000000 200"},
		{time.Microsecond, 499, "0.000001 499"},
		{300 * time.Millisecond, 502, "0.300000 502"}, // a float64 would print 0.30000000000000004 for 1.3 s
		{1300 * time.Millisecond, 204, "1.300000 204"},
		{-time.Second, 200, "0.000000 200"},
		{time.Duration(1<<63 - 1), 200, "9223372036.854775 200"},
	}
	for _, tt := range tests {
		if got := string(f.Append(nil, &Record{Duration: tt.d, Status: tt.status})); got != tt.want+"\n" {
			t.Errorf("%v, %d: got %q, want %q", tt.d, tt.status, got, tt.want)
		}
	}
}

// hostileValues are bytes a client controls, each with its text (nginx)
// escaping.
var hostileValues = []struct {
	name, in, text string
}{
	{"newline", "a\nb", `a\x0Ab`},
	{"carriage return and tab", "a\r\tb", `a\x0D\x09b`},
	{"quote", `a"b`, `a\x22b`},
	{"backslash", `a\b`, `a\x5Cb`},
	{"forged escape", `\x22`, `\x5Cx22`},
	{"NUL", "a\x00b", `a\x00b`},
	{"0xff", "a\xffb", `a\xFFb`},
	{"DEL", "a\x7fb", `a\x7Fb`},
	{"terminal escape", "\x1b[31mred", `\x1B[31mred`},
	{"valid UTF-8", "café", `caf\xC3\xA9`},
	{"truncated UTF-8", "caf\xc3", `caf\xC3`},
	{"surrogate", "\xed\xa0\x80", `\xED\xA0\x80`},
	{"line separator", "a\u2028b\u0085c", `a\xE2\x80\xA8b\xC2\x85c`},
	{"forged JSON", `","status":1`, `\x22,\x22status\x22:1`}, // short enough for a method
}

// hostileRecord puts v into every field a client controls.
func hostileRecord(v string) *Record {
	r := sampleRecord()
	r.Method, r.Host, r.Target = []byte(v), []byte(v), []byte(v)
	r.RequestID, r.UserAgent, r.Referer = []byte(v), []byte(v), []byte(v)
	r.SNI = v
	return r
}

func TestHostileBytesText(t *testing.T) {
	for _, v := range hostileValues {
		t.Run(v.name, func(t *testing.T) {
			r := hostileRecord(v.in)
			line := mustParse(t, "combined").Append(nil, r)
			checkTextLine(t, line)
			want := `192.0.2.10 - - [14/Mar/2026:15:09:26 +0100] "` + v.text + " " + v.text + ` HTTP/1.1" 200 5120 "` +
				v.text + `" "` + v.text + "\"\n"
			if string(line) != want {
				t.Errorf("combined:\ngot  %s\nwant %s", line, want)
			}
			line = mustParse(t, "$method $host $path $request_id $user_agent $referer $sni").Append(nil, r)
			checkTextLine(t, line)
			want = strings.Repeat(v.text+" ", 6) + v.text + "\n"
			if string(line) != want {
				t.Errorf("template:\ngot  %s\nwant %s", line, want)
			}
		})
	}
}

// checkTextLine fails unless line is printable ASCII ending in its only
// newline.
func checkTextLine(t *testing.T, line []byte) {
	t.Helper()
	for i, b := range line[:len(line)-1] {
		if b < 0x20 || b >= 0x7f {
			t.Fatalf("raw byte %#02x at %d in %q", b, i, line)
		}
	}
	if line[len(line)-1] != '\n' {
		t.Fatalf("no newline at the end of %q", line)
	}
}

func TestHostileBytesJSON(t *testing.T) {
	f := mustParse(t, "json")
	for _, v := range hostileValues {
		t.Run(v.name, func(t *testing.T) {
			line := f.Append(nil, hostileRecord(v.in))
			if i := strings.IndexAny(string(line[:len(line)-1]), "\n\r\u2028\u2029\u0085"); i >= 0 {
				t.Fatalf("a line break at %d in %q", i, line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, line)
			}
			want := decodedLikeEncodingJSON(t, v.in)
			for _, k := range []string{"method", "host", "path", "request_id", "user_agent", "referer", "sni"} {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			if got["status"] != 200.0 || got["service"] != "shop" || len(got) != len(jsonKeys) {
				t.Errorf("a field was forged or lost: %v", got)
			}
		})
	}
}

// decodedLikeEncodingJSON returns what s reads back as once
// encoding/json has encoded it: invalid UTF-8 bytes become U+FFFD.
func decodedLikeEncodingJSON(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJSONValues(t *testing.T) {
	line := mustParse(t, "json").Append(nil, sampleRecord())
	var got struct {
		Time              time.Time
		Service, Route    string
		ClientIP          string `json:"client_ip"`
		ClientPort        int    `json:"client_port"`
		Method, Host      string
		Path, Protocol    string
		Status            int
		BytesReceived     int64   `json:"bytes_received"`
		BytesSent         int64   `json:"bytes_sent"`
		Duration          float64 `json:"duration"`
		Upstream          string
		UpstreamConnect   float64 `json:"upstream_connect"`
		UpstreamFirstByte float64 `json:"upstream_first_byte"`
		Attempts          int
		TLSVersion        string `json:"tls_version"`
		SNI               string
		RequestID         string `json:"request_id"`
		UserAgent         string `json:"user_agent"`
		Referer, Reason   string
	}
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	r := sampleRecord()
	checks := []struct {
		name      string
		got, want any
	}{
		{"time", got.Time.UnixMilli(), r.Start.UnixMilli()},
		{"service", got.Service, r.Service},
		{"route", got.Route, r.Route},
		{"client_ip", got.ClientIP, r.Client.Addr().String()},
		{"client_port", got.ClientPort, int(r.Client.Port())},
		{"method", got.Method, string(r.Method)},
		{"host", got.Host, string(r.Host)},
		{"path", got.Path, string(r.Target)},
		{"protocol", got.Protocol, r.Proto},
		{"status", got.Status, r.Status},
		{"bytes_received", got.BytesReceived, r.BytesReceived},
		{"bytes_sent", got.BytesSent, r.BytesSent},
		{"duration", got.Duration, 0.012345},
		{"upstream", got.Upstream, r.Upstream},
		{"upstream_connect", got.UpstreamConnect, r.Connect.Seconds()},
		{"upstream_first_byte", got.UpstreamFirstByte, r.FirstByte.Seconds()},
		{"attempts", got.Attempts, r.Attempts},
		{"tls_version", got.TLSVersion, r.TLSVersion},
		{"sni", got.SNI, r.SNI},
		{"request_id", got.RequestID, string(r.RequestID)},
		{"user_agent", got.UserAgent, string(r.UserAgent)},
		{"referer", got.Referer, string(r.Referer)},
		{"reason", got.Reason, r.Reason},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLongFieldsAreCut(t *testing.T) {
	tests := []struct {
		name   string
		value  string
		format string
		unit   int // bytes one input byte becomes
	}{
		{"plain, text", strings.Repeat("a", 10000), "$path", 1},
		{"escaped, text", strings.Repeat("\xff", 10000), "$path", 4},
		{"plain, json", strings.Repeat("a", 10000), "json", 1},
		{"escaped, json", strings.Repeat("\x01", 10000), "json", 6},
		{"replaced, json", strings.Repeat("\xff", 10000), "json", 6},
		{"multibyte, json", strings.Repeat("é", 10000), "json", 2},
	}
	limit := fields[fieldPath].maxLen
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := mustParse(t, tt.format).Append(nil, &Record{Target: []byte(tt.value)})
			path := string(line[:len(line)-1])
			if tt.format == "json" {
				var got map[string]any
				if err := json.Unmarshal(line, &got); err != nil {
					t.Fatalf("not JSON once cut: %v", err)
				}
				start := strings.Index(path, `"path":"`) + len(`"path":"`)
				path = path[start : start+strings.Index(path[start:], `"`)]
			}
			kept, ok := strings.CutSuffix(path, truncated)
			if !ok || len(path) > limit || len(path) < limit-len(truncated)-tt.unit {
				t.Fatalf("path of %d bytes, want %d at most ending in %q: %q", len(path), limit, truncated, tail([]byte(path)))
			}
			if len(kept)%tt.unit != 0 {
				t.Errorf("cut inside an escape or a character: %q", tail([]byte(kept)))
			}
		})
	}
}

// TestLinesFitMaxLine fills every field with the input that expands most
// and checks each format's line against MaxLine and its own bound.
func TestLinesFitMaxLine(t *testing.T) {
	var every strings.Builder
	for _, n := range fieldNames() {
		every.WriteString("$" + n + " ")
	}
	huge := strings.Repeat("\x01", 3*MaxLine)
	r := hostileRecord(huge)
	r.Service, r.Upstream, r.TLSVersion, r.Reason, r.Proto = huge, huge, huge, huge, huge
	r.Client = netip.AddrPortFrom(netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").WithZone(huge), 65535)
	r.Start = time.Date(-292277022399, 1, 1, 0, 0, 0, 0, time.FixedZone("", -(23*3600+59*60)))
	r.Status, r.BytesReceived, r.BytesSent, r.Attempts = -1<<63, -1<<63, -1<<63, -1<<63
	r.Duration, r.Connect, r.FirstByte = 1<<63-1, 1<<63-1, 1<<63-1
	for f := fieldNone + 1; f < numFields; f++ {
		line := mustParse(t, "$"+fields[f].name).Append(nil, r)
		if n := len(line) - 1; n > fields[f].maxLen {
			t.Errorf("$%s: %d bytes, over its bound of %d: %.60q", fields[f].name, n, fields[f].maxLen, line)
		}
	}
	for _, s := range []string{"combined", "json", every.String()} {
		f := mustParse(t, s)
		n := len(f.Append(nil, r))
		if n > MaxLine {
			t.Errorf("%.20s: a line of %d bytes, over MaxLine", s, n)
		}
		t.Logf("%.20s: %d bytes at most", s, n)
	}
}

func TestParseFormatErrors(t *testing.T) {
	tests := []struct {
		format string
		want   []string // in the message
	}{
		{"", []string{"empty", `"combined"`, `"json"`}},
		{"$", []string{"lone $", "$$"}},
		{"$status $", []string{"lone $"}},
		{"$ status", []string{"byte 0", "not followed by a field name"}},
		{"$stauts", []string{`unknown field "stauts"`, `did you mean "status"?`, "fields: time_local, time_iso, client,", "service"}},
		{"$client $Status", []string{`unknown field "Status" at byte 8`, `did you mean "status"?`}},
		{"$remote_addr - $body_bytes_sent", []string{`"remote_addr"`, "nginx's $remote_addr is $client_ip"}},
		{"$hostname_of_x", []string{`"hostname_of_x"`, `write ${host} to end the name before "name_of_x"`}},
		{"$nothing_like_it", []string{`"nothing_like_it"`, "fields: time_local"}},
		{"${host", []string{"${ at byte 0 has no closing }"}},
		{"${}", []string{"empty ${}"}},
		{"${stat}", []string{`unknown field "stat"`, `"status"`}},
		{"combnied", []string{`"combnied" is not a format`, `did you mean "combined"?`}},
		{"JSON", []string{`did you mean "json"?`}},
		{"plain text", []string{"names no $field"}},
		{"$status\n$host", []string{"control character 0x0a at byte 7"}},
		{"$path $path $path $path", []string{"over the 16384 a line may have"}},
	}
	for _, tt := range tests {
		f, err := ParseFormat(tt.format)
		if err == nil {
			t.Errorf("ParseFormat(%q) = %q, want an error", tt.format, f)
			continue
		}
		if !errors.Is(err, ErrBadFormat) {
			t.Errorf("ParseFormat(%q): %v does not wrap ErrBadFormat", tt.format, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseFormat(%q): %q lacks %q", tt.format, err, w)
			}
		}
	}
}

func TestAppendAllocatesNothing(t *testing.T) {
	for _, s := range []string{"combined", "json", "$time_iso $client $request $status $duration $user_agent $sni"} {
		f := mustParse(t, s)
		buf := make([]byte, 0, MaxLine)
		for name, r := range map[string]*Record{"sample": sampleRecord(), "hostile": hostileRecord("\xff\"\n\u2028é")} {
			if n := testing.AllocsPerRun(1000, func() { buf = f.Append(buf[:0], r) }); n != 0 {
				t.Errorf("%.20s, %s record: %v allocations per line, want 0", s, name, n)
			}
		}
	}
}
