package h1

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// requestCases: each raw request head with either the summary of its parse
// (see summarizeRequest) or the error class it must produce.
var requestCases = []struct {
	name, raw, want string
}{
	// Valid requests and what they mean.
	{"minimal 1.1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"1.0 without Host closes", "GET /x HTTP/1.0\r\n\r\n",
		"GET /x 1.0 host=<nil> cl=-1 chunked=false ka=false upgrade=<nil> expect=false mode=none"},
	{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		"GET / 1.0 host=<nil> cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=false upgrade=<nil> expect=false mode=none"},
	{"close among options, any case", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=false upgrade=<nil> expect=false mode=none"},
	{"close and keep-alive: close wins", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
		"GET / 1.0 host=<nil> cl=-1 chunked=false ka=false upgrade=<nil> expect=false mode=none"},
	{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"GET /ws 1.1 host=a cl=-1 chunked=false ka=true upgrade=websocket expect=false mode=none"},
	{"Upgrade not listed in Connection", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"Upgrade ignored in 1.0", "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
		"GET / 1.0 host=<nil> cl=-1 chunked=false ka=false upgrade=<nil> expect=false mode=none"},
	{"expect 100-continue", "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
		"PUT /u 1.1 host=a cl=3 chunked=false ka=true upgrade=<nil> expect=true mode=length"},
	{"expect ignored in 1.0", "PUT /u HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
		"PUT /u 1.0 host=<nil> cl=3 chunked=false ka=false upgrade=<nil> expect=false mode=length"},
	{"content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
		"POST / 1.1 host=a cl=5 chunked=false ka=true upgrade=<nil> expect=false mode=length"},
	{"content-length zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"POST / 1.1 host=a cl=0 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"content-length leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
		"POST / 1.1 host=a cl=7 chunked=false ka=true upgrade=<nil> expect=false mode=length"},
	{"content-length repeated identical", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
		"POST / 1.1 host=a cl=5 chunked=false ka=true upgrade=<nil> expect=false mode=length"},
	{"content-length identical list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 , 5,5\r\n\r\n",
		"POST / 1.1 host=a cl=5 chunked=false ka=true upgrade=<nil> expect=false mode=length"},
	{"content-length max int64", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
		"POST / 1.1 host=a cl=9223372036854775807 chunked=false ka=true upgrade=<nil> expect=false mode=length"},
	{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / 1.1 host=a cl=-1 chunked=true ka=true upgrade=<nil> expect=false mode=chunked"},
	{"chunked any case", "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n",
		"POST / 1.1 host=a cl=-1 chunked=true ka=true upgrade=<nil> expect=false mode=chunked"},
	{"one empty line skipped", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"several empty lines skipped", "\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"bare LF line endings", "GET / HTTP/1.1\nHost: a\nContent-Length: 2\n\n",
		"GET / 1.1 host=a cl=2 chunked=false ka=true upgrade=<nil> expect=false mode=length"},
	{"mixed line endings", "GET / HTTP/1.1\nHost: a\r\n\n",
		"GET / 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"absolute-form", "GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET http://example.com:8080/p?q=1 1.1 host=other cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"absolute-form without path", "GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET https://example.com 1.1 host=example.com cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"connect authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"CONNECT example.com:443 1.1 host=example.com:443 cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"connect ipv6", "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
		"CONNECT [::1]:443 1.1 host=[::1]:443 cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"options asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"extension method", "PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n",
		"PROPFIND /d 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"empty Host allowed", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		"GET / 1.1 host= cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"Host trimmed", "GET / HTTP/1.1\r\nHost: \t a.b:80 \t\r\n\r\n",
		"GET / 1.1 host=a.b:80 cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},
	{"target with percent and query", "GET /a%20b?x=[1]&y=~ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%20b?x=[1]&y=~ 1.1 host=a cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none"},

	// Request line.
	{"double space before target", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"double space before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "400"},
	{"leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"obs-text in target", "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"DEL in target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"no version (HTTP/0.9)", "GET /\r\n\r\n", "400"},
	{"no spaces", "GET\r\n\r\n", "400"},
	{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", "400"},
	{"long minor version", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", "400"},
	{"garbage version", "GET / HTTP/one\r\nHost: a\r\n\r\n", "400"},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505"},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"},
	{"HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", "505"},
	{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"},
	{"method with separator", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"method with NUL", "G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"relative target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"CONNECT with path", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"CONNECT without port", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"CONNECT empty port", "CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"CONNECT with userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"absolute-form with userinfo", "GET http://user@evil.com/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"absolute-form empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	{"absolute-form bad scheme", "GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400"},

	// Line endings.
	{"bare CR ends request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", "400"},
	{"CR CR LF after request line", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", "400"},
	{"bare CR in field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "400"},
	{"CR CR LF after field", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", "400"},
	{"bare CR as terminator", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", "400"},
	{"lone CR before request line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},

	// Field lines.
	{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400"},
	{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "400"},
	{"TE with space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", "400"},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "400"},
	{"obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", "400"},
	{"obs-folded TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", "400"},
	{"whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", "400"},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", "400"},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", "400"},
	{"name with separator", "GET / HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n", "400"},
	{"name with obs-text", "GET / HTTP/1.1\r\nHost: a\r\nX\xffY: v\r\n\r\n", "400"},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "400"},
	{"control byte in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "400"},
	{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", "400"},
	{"vertical tab in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\vb\r\n\r\n", "400"},

	// Framing.
	{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "400"},
	{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
	{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", "501"},
	{"TE chunked then identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "501"},
	{"TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"},
	{"TE chunked on two lines then gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
	{"TE chunked twice in a list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "400"},
	{"TE chunked on two lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", "400"},
	{"TE empty element", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n", "400"},
	{"TE trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", "400"},
	{"TE chunked with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", "400"},
	{"TE quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", "400"},
	{"TE with inner space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun ked\r\n\r\n", "400"},
	{"TE with vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \vchunked\r\n\r\n", "400"},
	{"TE with obs-text", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xff\r\n\r\n", "400"},
	{"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "400"},
	{"CL plus sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "400"},
	{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", "400"},
	{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", "400"},
	{"CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", "400"},
	{"CL trailing junk", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", "400"},
	{"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", "400"},
	{"CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", "400"},
	{"CL conflicting lines", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "400"},
	{"CL conflicting list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", "400"},
	{"CL trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", "400"},
	{"CL empty element", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,5\r\n\r\n", "400"},
	{"CL and gzip TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", "400"},

	// Host.
	{"1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", "400"},
	{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
	{"two identical Host fields", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", "400"},
	{"two Host fields in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "400"},
	{"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "400"},

	// End of input.
	{"nothing", "", "eof"},
	{"only empty lines", "\r\n\r\n\n", "eof"},
	{"truncated request line", "GET / HTT", "unexpected-eof"},
	{"truncated fields", "GET / HTTP/1.1\r\nHost: a\r\n", "unexpected-eof"},
	{"truncated final CRLF", "GET / HTTP/1.1\r\nHost: a\r\n\r", "unexpected-eof"},
	{"lone CR then end", "\r", "unexpected-eof"},
}

func TestReadRequest(t *testing.T) {
	for _, tc := range requestCases {
		for srcName, src := range sources(tc.raw) {
			t.Run(tc.name+"/"+srcName, func(t *testing.T) {
				rd := NewReader(src())
				defer rd.Release()
				var req Request
				err := rd.ReadRequest(&req, Limits{})
				got := errClass(err)
				if err == nil {
					got = summarizeRequest(&req)
				}
				if got != tc.want {
					t.Fatalf("ReadRequest(%q)\n got: %s (err %v)\nwant: %s", tc.raw, got, err, tc.want)
				}
			})
		}
	}
}

func TestReadRequestErrorsWrapSentinels(t *testing.T) {
	cases := []struct {
		raw      string
		sentinel error
	}{
		{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", ErrMalformed},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", ErrUnsupportedVersion},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", ErrUnsupportedTransferCoding},
	}
	for _, tc := range cases {
		err := NewReader(strings.NewReader(tc.raw)).ReadRequest(&Request{}, Limits{})
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("ReadRequest(%q) = %v, want %v", tc.raw, err, tc.sentinel)
		}
		if err != nil && !strings.Contains(err.Error(), tc.sentinel.Error()) {
			t.Errorf("message %q does not name its class", err)
		}
	}
}

func TestErrorMessageQuotesOffendingBytes(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 12x\r\n\r\n"
	err := NewReader(strings.NewReader(raw)).ReadRequest(&Request{}, Limits{})
	if err == nil || !strings.Contains(err.Error(), `"12x"`) {
		t.Fatalf("error %v does not quote the bad value", err)
	}
	long := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 1000) + "\x00\r\n\r\n"
	err = NewReader(strings.NewReader(long)).ReadRequest(&Request{}, Limits{})
	if errStatus(err) != 400 || len(err.Error()) > 200 {
		t.Fatalf("error for a long bad line = %v (%d bytes), want a short 400", err, len(err.Error()))
	}
}

func TestRequestFieldsKeptInOrder(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX-A:  1 \r\nx-b:\t2\t\r\nX-A: 3\r\nEmpty:\r\nObs: caf\xe9\r\n\r\n"
	var req Request
	if err := NewReader(strings.NewReader(raw)).ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := `Host="a";X-A="1";x-b="2";X-A="3";Empty="";Obs="caf\xe9";`
	if got := fieldsOf(&req.Header); got != want {
		t.Fatalf("fields = %s, want %s", got, want)
	}
}

func TestAuthority(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"GET / HTTP/1.1\r\nHost: h:80\r\n\r\n", "h:80"},
		{"GET http://abs.example/p HTTP/1.1\r\nHost: other\r\n\r\n", "abs.example"},
		{"GET http://abs.example?q HTTP/1.1\r\nHost: other\r\n\r\n", "abs.example"},
		{"CONNECT tunnel:443 HTTP/1.1\r\nHost: other\r\n\r\n", "tunnel:443"},
		{"OPTIONS * HTTP/1.1\r\nHost: star\r\n\r\n", "star"},
	}
	for _, tc := range cases {
		var req Request
		if err := NewReader(strings.NewReader(tc.raw)).ReadRequest(&req, Limits{}); err != nil {
			t.Fatalf("%q: %v", tc.raw, err)
		}
		if got := string(req.Authority()); got != tc.want {
			t.Errorf("Authority of %q = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestRequestLimits(t *testing.T) {
	fields := func(n int) string {
		var sb strings.Builder
		sb.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
		for i := 1; i < n; i++ {
			sb.WriteString("X: y\r\n")
		}
		sb.WriteString("\r\n")
		return sb.String()
	}
	exactly := fields(1)
	cases := []struct {
		name string
		raw  string
		lim  Limits
		want string
	}{
		{"100 fields by default", fields(100), Limits{}, "ok"},
		{"101 fields", fields(101), Limits{}, "431"},
		{"custom field limit", fields(4), Limits{MaxHeaders: 3}, "431"},
		{"head exactly at limit", exactly, Limits{MaxHeaderBytes: len(exactly)}, "ok"},
		{"head one byte over", exactly, Limits{MaxHeaderBytes: len(exactly) - 1}, "431"},
		{"empty lines count", "\r\n\r\n" + exactly, Limits{MaxHeaderBytes: len(exactly) + 3}, "431"},
		{"long value", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 40<<10) + "\r\n\r\n", Limits{}, "431"},
		{"large head under a large limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 100<<10) + "\r\n\r\n",
			Limits{MaxHeaderBytes: 200 << 10}, "ok"},
		{"endless empty lines", strings.Repeat("\r\n", 20000), Limits{}, "431"},
	}
	for _, tc := range cases {
		for srcName, src := range sources(tc.raw) {
			t.Run(tc.name+"/"+srcName, func(t *testing.T) {
				var req Request
				err := NewReader(src()).ReadRequest(&req, tc.lim)
				if got := errClass(err); got != tc.want {
					t.Fatalf("got %s (%v), want %s", got, err, tc.want)
				}
			})
		}
	}
}

// TestHeadLimitBoundsReading checks that an endless head is refused after
// reading no more than MaxHeaderBytes from the connection.
func TestHeadLimitBoundsReading(t *testing.T) {
	for _, limit := range []int{100, 4096, 4097, 20000, DefaultMaxHeaderBytes} {
		for _, pattern := range []string{"X: yyyyyyyyyy\r\n", "x", "\r\n"} {
			src := &countingReader{r: &endlessReader{pattern: []byte("GET / HTTP/1.1\r\n" + pattern)}}
			if pattern == "\r\n" {
				src.r = &endlessReader{pattern: []byte(pattern)}
			}
			var req Request
			err := NewReader(src).ReadRequest(&req, Limits{MaxHeaderBytes: limit})
			if errStatus(err) != 431 {
				t.Fatalf("limit %d pattern %q: err = %v, want 431", limit, pattern, err)
			}
			if src.n > limit {
				t.Fatalf("limit %d pattern %q: read %d bytes, want at most %d", limit, pattern, src.n, limit)
			}
		}
	}
}

func TestPipelinedRequests(t *testing.T) {
	raw := "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n" +
		"\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /4 HTTP/1.0\r\n\r\n"
	want := []struct{ target, body, trailer string }{
		{"/1", "hello", ""},
		{"/2", "abcde", `T="v";`},
		{"/3", "", ""},
		{"/4", "", ""},
	}
	for srcName, src := range sources(raw) {
		t.Run(srcName, func(t *testing.T) {
			rd := NewReader(src())
			defer rd.Release()
			var req Request
			var trailer Header
			for i, w := range want {
				if err := rd.ReadRequest(&req, Limits{}); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				body, err := io.ReadAll(rd.RequestBody(&req, &trailer))
				if err != nil {
					t.Fatalf("request %d body: %v", i, err)
				}
				if string(req.Target) != w.target || string(body) != w.body || fieldsOf(&trailer) != w.trailer {
					t.Fatalf("request %d = %s %q trailer %s, want %s %q %s", i, req.Target, body, fieldsOf(&trailer), w.target, w.body, w.trailer)
				}
				trailer.Reset()
			}
			if err := rd.ReadRequest(&req, Limits{}); err != io.EOF {
				t.Fatalf("after the last request: %v, want io.EOF", err)
			}
		})
	}
}

func TestUnreadBodyBlocksNextHead(t *testing.T) {
	// The body of the first request looks like a request: a Reader that
	// parsed on without reading the body would let it be smuggled.
	smuggled := "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
	raw := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + itoa(len(smuggled)) + "\r\n\r\n" + smuggled
	rd := NewReader(strings.NewReader(raw))
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, ErrBodyUnread) {
		t.Fatalf("second ReadRequest before the body = %v, want ErrBodyUnread", err)
	}
	body := rd.RequestBody(&req, nil)
	buf := make([]byte, 4)
	if _, err := body.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, ErrBodyUnread) {
		t.Fatalf("ReadRequest in the middle of the body = %v, want ErrBodyUnread", err)
	}
	rest, err := io.ReadAll(body)
	if err != nil || string(buf)+string(rest) != smuggled {
		t.Fatalf("body = %q, %v", string(buf)+string(rest), err)
	}
	if err := rd.ReadRequest(&req, Limits{}); err != io.EOF {
		t.Fatalf("after the body: %v, want io.EOF", err)
	}
}

func TestFailedBodyBlocksNextHead(t *testing.T) {
	raw := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
	rd := NewReader(strings.NewReader(raw))
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rd.RequestBody(&req, nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("body error = %v, want ErrMalformed", err)
	}
	rd.BodyLength(0) // starting an empty body must not clear the failure
	if err := rd.ReadRequest(&req, Limits{}); !errors.Is(err, ErrBodyUnread) {
		t.Fatalf("ReadRequest after a failed body = %v, want ErrBodyUnread", err)
	}
	rd.Reset(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatalf("ReadRequest after Reset = %v", err)
	}
}

func TestRequestSlicesSurviveBodyAndBufferReuse(t *testing.T) {
	// A head, then a body much larger than the buffer: reading the body
	// overwrites the buffer many times, and the head must not change.
	body := strings.Repeat("b", 64<<10)
	raw := "POST /keep HTTP/1.1\r\nHost: h\r\nX-Keep: value\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	rd := NewReader(iotest.HalfReader(strings.NewReader(raw)))
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rd.RequestBody(&req, nil)}, buf)
	if err != nil || got != int64(len(body)) {
		t.Fatalf("body: %d bytes, %v", got, err)
	}
	v, _ := req.Header.Get("x-keep")
	if string(req.Method) != "POST" || string(req.Target) != "/keep" || string(req.Host) != "h" || string(v) != "value" {
		t.Fatalf("head changed while reading the body: %s", summarizeRequest(&req))
	}
}

func TestParsedSlicesAreClipped(t *testing.T) {
	var req Request
	raw := "GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n"
	if err := NewReader(strings.NewReader(raw)).ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	_ = append(req.Method, "XXXXXXXX"...)
	_ = append(req.Target, "XXXXXXXX"...)
	_ = append(req.Host, "XXXXXXXX"...)
	if summarizeRequest(&req) != "GET /a 1.1 host=h cl=-1 chunked=false ka=true upgrade=<nil> expect=false mode=none" ||
		fieldsOf(&req.Header) != `Host="h";X="1";` {
		t.Fatalf("appending to parsed slices changed the request: %s %s", summarizeRequest(&req), fieldsOf(&req.Header))
	}
}

func TestLargeHeadMovesToLargerBufferAndBack(t *testing.T) {
	big := "GET /big HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 20<<10) + "\r\n\r\n"
	small := "GET /small HTTP/1.1\r\nHost: a\r\n\r\n"
	rd := NewReader(strings.NewReader(big + small))
	defer rd.Release()
	var req Request
	if err := rd.ReadRequest(&req, Limits{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := req.Header.Get("X"); len(v) != 20<<10 || len(rd.buf) <= smallBufSize {
		t.Fatalf("big head: value %d bytes, buffer %d bytes", len(v), len(rd.buf))
	}
	if err := rd.ReadRequest(&req, Limits{}); err != nil || string(req.Target) != "/small" {
		t.Fatalf("small head: %v %s", err, req.Target)
	}
	if len(rd.buf) != smallBufSize {
		t.Fatalf("buffer after a small head = %d bytes, want it back to %d", len(rd.buf), smallBufSize)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range requestCases {
		var req Request
		if err := NewReader(strings.NewReader(tc.raw)).ReadRequest(&req, Limits{}); err != nil {
			continue
		}
		out := serializeRequest(&req)
		var again Request
		if err := NewReader(bytes.NewReader(out)).ReadRequest(&again, Limits{}); err != nil {
			t.Fatalf("%s: re-parsing %q: %v", tc.name, out, err)
		}
		if a, b := summarizeRequest(&req), summarizeRequest(&again); a != b {
			t.Fatalf("%s: round trip changed the request:\n%s\n%s", tc.name, a, b)
		}
		if a, b := fieldsOf(&req.Header), fieldsOf(&again.Header); a != b {
			t.Fatalf("%s: round trip changed the fields:\n%s\n%s", tc.name, a, b)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
