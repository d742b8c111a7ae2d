package h1

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// responseCases: each raw response head, the method of the request it
// answers, and the summary of its parse (see summarizeResponse) or the
// error class it must produce.
var responseCases = []struct {
	name, method, raw, want string
}{
	{"length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		`1.1 200 "OK" cl=5 chunked=false ka=true upgrade=<nil> mode=length`},
	{"zero length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		`1.1 200 "OK" cl=0 chunked=false ka=true upgrade=<nil> mode=none`},
	{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\n",
		`1.1 200 "OK" cl=-1 chunked=false ka=false upgrade=<nil> mode=until-close`},
	{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		`1.1 200 "OK" cl=-1 chunked=true ka=true upgrade=<nil> mode=chunked`},
	{"chunked with CL: chunked, then close", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
		`1.1 200 "OK" cl=-1 chunked=true ka=false upgrade=<nil> mode=chunked`},
	{"chunked from 1.0 server: chunked, then close", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
		`1.0 200 "OK" cl=-1 chunked=true ka=false upgrade=<nil> mode=chunked`},
	{"1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
		`1.0 200 "OK" cl=1 chunked=false ka=true upgrade=<nil> mode=length`},
	{"1.0 default close", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
		`1.0 200 "OK" cl=1 chunked=false ka=false upgrade=<nil> mode=length`},
	{"1.1 close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
		`1.1 200 "OK" cl=1 chunked=false ka=false upgrade=<nil> mode=length`},
	{"later minor read as 1.1", "GET", "HTTP/1.7 200 OK\r\nContent-Length: 1\r\n\r\n",
		`1.1 200 "OK" cl=1 chunked=false ka=true upgrade=<nil> mode=length`},
	{"HEAD with length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n",
		`1.1 200 "OK" cl=500 chunked=false ka=true upgrade=<nil> mode=none`},
	{"HEAD with chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		`1.1 200 "OK" cl=-1 chunked=true ka=true upgrade=<nil> mode=none`},
	{"HEAD without framing", "HEAD", "HTTP/1.1 200 OK\r\n\r\n",
		`1.1 200 "OK" cl=-1 chunked=false ka=true upgrade=<nil> mode=none`},
	{"HEAD with gzip coding tolerated", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		`1.1 200 "OK" cl=-1 chunked=false ka=true upgrade=<nil> mode=none`},
	{"100 continue", "POST", "HTTP/1.1 100 Continue\r\n\r\n",
		`1.1 100 "Continue" cl=-1 chunked=false ka=true upgrade=<nil> mode=none`},
	{"103 early hints", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
		`1.1 103 "Early Hints" cl=-1 chunked=false ka=true upgrade=<nil> mode=none`},
	{"101 upgrade", "GET", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		`1.1 101 "Switching Protocols" cl=-1 chunked=false ka=true upgrade=websocket mode=none`},
	{"101 without Connection upgrade", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		`1.1 101 "Switching Protocols" cl=-1 chunked=false ka=true upgrade=<nil> mode=none`},
	{"204 ignores length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
		`1.1 204 "No Content" cl=7 chunked=false ka=true upgrade=<nil> mode=none`},
	{"304 ignores chunked", "GET", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
		`1.1 304 "Not Modified" cl=-1 chunked=true ka=true upgrade=<nil> mode=none`},
	{"CONNECT 200 is a tunnel", "CONNECT", "HTTP/1.1 200 Connection Established\r\n\r\n",
		`1.1 200 "Connection Established" cl=-1 chunked=false ka=true upgrade=<nil> mode=none`},
	{"CONNECT 407 has a body", "CONNECT", "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\n",
		`1.1 407 "Proxy Authentication Required" cl=2 chunked=false ka=true upgrade=<nil> mode=length`},
	{"no reason, no space", "GET", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
		`1.1 200 "" cl=0 chunked=false ka=true upgrade=<nil> mode=none`},
	{"empty reason", "GET", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
		`1.1 404 "" cl=0 chunked=false ka=true upgrade=<nil> mode=none`},
	{"reason with spaces and obs-text", "GET", "HTTP/1.1 500  Very  Bad\xe9 \r\nContent-Length: 0\r\n\r\n",
		"1.1 500 \" Very  Bad\\xe9 \" cl=0 chunked=false ka=true upgrade=<nil> mode=none"},
	{"status 999", "GET", "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
		`1.1 999 "Odd" cl=0 chunked=false ka=true upgrade=<nil> mode=none`},
	{"repeated identical lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n",
		`1.1 200 "OK" cl=3 chunked=false ka=true upgrade=<nil> mode=length`},
	{"leading empty line", "GET", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		`1.1 200 "OK" cl=0 chunked=false ka=true upgrade=<nil> mode=none`},
	{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		`1.1 200 "OK" cl=0 chunked=false ka=true upgrade=<nil> mode=none`},

	{"HTTP/2.0", "GET", "HTTP/2.0 200 OK\r\n\r\n", "505"},
	{"HTTP/0.9", "GET", "HTTP/0.9 200 OK\r\n\r\n", "505"},
	{"lower-case version", "GET", "http/1.1 200 OK\r\n\r\n", "400"},
	{"version only", "GET", "HTTP/1.1\r\n\r\n", "400"},
	{"two-digit status", "GET", "HTTP/1.1 20 OK\r\n\r\n", "400"},
	{"four-digit status", "GET", "HTTP/1.1 2000 OK\r\n\r\n", "400"},
	{"status below 100", "GET", "HTTP/1.1 099 Low\r\n\r\n", "400"},
	{"status with letter", "GET", "HTTP/1.1 2x0 OK\r\n\r\n", "400"},
	{"no space after status", "GET", "HTTP/1.1 200OK\r\n\r\n", "400"},
	{"two spaces before status", "GET", "HTTP/1.1  200 OK\r\n\r\n", "400"},
	{"tab before status", "GET", "HTTP/1.1\t200 OK\r\n\r\n", "400"},
	{"bare CR in reason", "GET", "HTTP/1.1 200 O\rK\r\n\r\n", "400"},
	{"NUL in reason", "GET", "HTTP/1.1 200 O\x00K\r\n\r\n", "400"},
	{"not HTTP", "GET", "SSH-2.0-OpenSSH\r\n\r\n", "400"},
	{"invalid length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "400"},
	{"negative length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "400"},
	{"conflicting lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400"},
	{"invalid length on HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "400"},
	{"gzip coding", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
	{"gzip then chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"},
	{"chunked twice", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
	{"obs-fold", "GET", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "400"},
	{"space before colon", "GET", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", "400"},
	{"nothing", "GET", "", "eof"},
	{"truncated", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", "unexpected-eof"},
}

func TestReadResponse(t *testing.T) {
	for _, tc := range responseCases {
		for srcName, src := range sources(tc.raw) {
			t.Run(tc.name+"/"+srcName, func(t *testing.T) {
				rd := NewReader(src())
				defer rd.Release()
				var resp Response
				err := rd.ReadResponse(&resp, []byte(tc.method), Limits{})
				got := errClass(err)
				if err == nil {
					got = summarizeResponse(&resp)
				}
				if got != tc.want {
					t.Fatalf("ReadResponse(%q)\n got: %s (err %v)\nwant: %s", tc.raw, got, err, tc.want)
				}
			})
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, tc := range responseCases {
		var resp Response
		if err := NewReader(strings.NewReader(tc.raw)).ReadResponse(&resp, []byte(tc.method), Limits{}); err != nil {
			continue
		}
		out := serializeResponse(&resp)
		var again Response
		if err := NewReader(bytes.NewReader(out)).ReadResponse(&again, []byte(tc.method), Limits{}); err != nil {
			t.Fatalf("%s: re-parsing %q: %v", tc.name, out, err)
		}
		if a, b := summarizeResponse(&resp), summarizeResponse(&again); a != b {
			t.Fatalf("%s: round trip changed the response:\n%s\n%s", tc.name, a, b)
		}
		if a, b := fieldsOf(&resp.Header), fieldsOf(&again.Header); a != b {
			t.Fatalf("%s: round trip changed the fields:\n%s\n%s", tc.name, a, b)
		}
	}
}

// TestInterimResponsesThenFinal reads the sequence a proxy loops over: 1xx
// responses are returned one by one, then the final response and its body.
func TestInterimResponsesThenFinal(t *testing.T) {
	raw := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Checksum: 1\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n"
	for srcName, src := range sources(raw) {
		t.Run(srcName, func(t *testing.T) {
			rd := NewReader(src())
			var resp Response
			var statuses []int
			for range 3 {
				if err := rd.ReadResponse(&resp, []byte("POST"), Limits{}); err != nil {
					t.Fatal(err)
				}
				statuses = append(statuses, resp.Status)
			}
			if statuses[0] != 100 || statuses[1] != 103 || statuses[2] != 200 {
				t.Fatalf("statuses %v", statuses)
			}
			var trailer Header
			body, err := io.ReadAll(rd.ResponseBody(&resp, &trailer))
			if err != nil || string(body) != "body" || fieldsOf(&trailer) != `X-Checksum="1";` {
				t.Fatalf("body %q trailer %s err %v", body, fieldsOf(&trailer), err)
			}
			if err := rd.ReadResponse(&resp, []byte("GET"), Limits{}); err != nil || resp.Status != 204 {
				t.Fatalf("next response: %v %d", err, resp.Status)
			}
		})
	}
}

// TestUpgradeHandsBufferedBytesToTunnel checks that bytes of the new
// protocol that arrived with a 101 head reach the tunnel, first from the
// buffer and then from the connection.
func TestUpgradeHandsBufferedBytesToTunnel(t *testing.T) {
	raw := "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello-and-more"
	rd := NewReader(strings.NewReader(raw))
	var resp Response
	if err := rd.ReadResponse(&resp, []byte("GET"), Limits{}); err != nil {
		t.Fatal(err)
	}
	if string(resp.Upgrade) != "websocket" {
		t.Fatalf("Upgrade = %q", resp.Upgrade)
	}
	if rd.Buffered() != len("\x81\x05hello-and-more") {
		t.Fatalf("Buffered = %d", rd.Buffered())
	}
	var tunnel bytes.Buffer
	if n, err := rd.WriteBufferedTo(&tunnel); err != nil || n != int64(len("\x81\x05hello-and-more")) {
		t.Fatalf("WriteBufferedTo = %d, %v", n, err)
	}
	if rd.Buffered() != 0 || tunnel.String() != "\x81\x05hello-and-more" {
		t.Fatalf("tunnel got %q, %d left", tunnel.String(), rd.Buffered())
	}

	rd = NewReader(iotest.OneByteReader(strings.NewReader(raw)))
	if err := rd.ReadResponse(&resp, []byte("GET"), Limits{}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	if err != nil || string(rest) != "\x81\x05hello-and-more" {
		t.Fatalf("raw Read after upgrade = %q, %v", rest, err)
	}
}
