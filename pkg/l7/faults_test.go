package l7

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// scriptedOrigin is an HTTP/1.1 upstream on loopback that reads every
// request it is sent, on any connection, numbers them from 1 in arrival
// order, and lets answer write the raw response to request n. answer
// returns false to close the connection after it.
type scriptedOrigin struct {
	addr string
	mu   sync.Mutex
	seen []string // every request in arrival order: "METHOD /path", or "stream N" over HTTP/2
	// heads is told the number of each request once its head is read.
	heads chan int
}

func startScriptedOrigin(t *testing.T, answer func(n int, c net.Conn) (keepAlive bool)) *scriptedOrigin {
	t.Helper()
	return listenOrigin(t, func(o *scriptedOrigin, c net.Conn) { o.serve(c, answer) })
}

// listenOrigin starts an origin on loopback that serves each connection
// with serve.
func listenOrigin(t *testing.T, serve func(*scriptedOrigin, net.Conn)) *scriptedOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &scriptedOrigin{addr: ln.Addr().String(), heads: make(chan int, 64)}
	testenv.AcceptEach(t, ln, func(c net.Conn) { serve(o, c) })
	return o
}

// record notes a request, described by what, and returns its number.
func (o *scriptedOrigin) record(what string) int {
	o.mu.Lock()
	o.seen = append(o.seen, what)
	n := len(o.seen)
	o.mu.Unlock()
	select {
	case o.heads <- n:
	default:
	}
	return n
}

func (o *scriptedOrigin) serve(c net.Conn, answer func(int, net.Conn) bool) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		n := o.record(req.Method + " " + req.URL.Path)
		if req.ContentLength != 0 && req.Header.Get("Expect") == "" {
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
		}
		if !answer(n, c) {
			return
		}
	}
}

// requests returns what the origin has received so far.
func (o *scriptedOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// logRecords is a slog handler that keeps every record, for assertions on
// what the proxy logged.
type logRecords struct {
	mu      sync.Mutex
	records []map[string]string
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, m)
	h.mu.Unlock()
	return nil
}

// find returns the records whose message is msg.
func (h *logRecords) find(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitFor waits up to 2 s for a record with message msg (the request's
// log line is written after its last byte went out).
func (h *logRecords) waitFor(t *testing.T, msg string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if rs := h.find(msg); len(rs) > 0 {
			return rs[0]
		}
		if time.Now().After(deadline) {
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Fatalf("no %q log record; have %v", msg, h.records)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// faultyFront starts a proxy in front of one backend, reached with the
// settings of peer, that logs into the returned records.
func faultyFront(t *testing.T, backend string, peer Peer) (string, *logRecords) {
	t.Helper()
	logs := &logRecords{}
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend)
	srv := &Server{
		Proxy:  &Balanced{LB: pool, Template: peer},
		Logger: slog.New(logs),
	}
	return startProxy(t, srv), logs
}

// sendRaw writes raw request bytes on k.
func sendRaw(t *testing.T, k *keepAliveConn, raw string) {
	t.Helper()
	if _, err := k.c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
}

// finalResponse reads one final response on k, body included, past
// interim ones.
func finalResponse(k *keepAliveConn, method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(k.r, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(k.r, &http.Request{Method: method})
	}
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

// TestMalformedResponseIsNeverResent: once a response byte has arrived on
// a reused upstream connection, a bad response is the upstream's 502, and
// the request, whatever its method, is not sent again. Only a connection
// that closed before any response byte may see its request resent.
func TestMalformedResponseIsNeverResent(t *testing.T) {
	bigHead := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 128<<10) + "\r\nContent-Length: 0\r\n\r\n"
	tests := []struct {
		name   string
		second string // what the upstream answers to every request after the first, before closing
		method string
		// wantStatus is what the client gets, wantSent how many requests
		// the upstream receives in all (the first included).
		wantStatus, wantSent int
	}{
		{"bad status line GET", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "GET", 502, 2},
		{"bad status line DELETE", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "DELETE", 502, 2},
		{"bad status line PUT", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "PUT", 502, 2},
		{"conflicting lengths GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "GET", 502, 2},
		{"conflicting lengths DELETE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "DELETE", 502, 2},
		{"head over the limit GET", bigHead, "GET", 502, 2},
		{"head over the limit PUT", bigHead, "PUT", 502, 2},
		{"garbage GET", "SSH-2.0-OpenSSH_9.2\r\n", "GET", 502, 2},
		{"interim response then close", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", "GET", 502, 2},
		{"one byte then close", "H", "DELETE", 502, 2},
		// The one case a resend is allowed: closed before any byte.
		{"closed before any byte GET", "", "GET", 200, 3},
		{"closed before any byte DELETE", "", "DELETE", 200, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := startScriptedOrigin(t, func(n int, c net.Conn) bool {
				switch {
				case n == 1:
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwarm!")
					return true
				case n == 2:
					io.WriteString(c, tc.second)
					return false
				default: // a resend, on a new connection
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nresent")
					return true
				}
			})
			addr, _ := faultyFront(t, o.addr, Peer{})
			k := dialKeepAlive(t, addr)
			sendRaw(t, k, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body, err := finalResponse(k, "GET"); err != nil || resp.StatusCode != 200 || body != "warm!" {
				t.Fatalf("first request: %v %v %q", resp, err, body)
			}
			sendRaw(t, k, tc.method+" /second HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, _, err := finalResponse(k, tc.method)
			if err != nil {
				t.Fatalf("second request: %v", err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("second request answered %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := o.requests(); len(got) != tc.wantSent {
				t.Errorf("the upstream received %d requests %q, want %d", len(got), got, tc.wantSent)
			}
		})
	}
}

// TestRequestWithBodyIsNeverResent: a request with a body is not resent
// even when its reused connection closed before any response byte.
func TestRequestWithBodyIsNeverResent(t *testing.T) {
	o := startScriptedOrigin(t, func(n int, c net.Conn) bool {
		if n == 1 {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwarm!")
			return true
		}
		return false
	})
	addr, _ := faultyFront(t, o.addr, Peer{})
	k := dialKeepAlive(t, addr)
	sendRaw(t, k, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, _, err := finalResponse(k, "GET"); err != nil {
		t.Fatal(err)
	}
	sendRaw(t, k, "PUT /second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	resp, _, err := finalResponse(k, "PUT")
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("got %v %v, want 502", resp, err)
	}
	if got := o.requests(); len(got) != 2 {
		t.Fatalf("the upstream received %q, want the PUT once", got)
	}
}

// clientFaultTest is a request body a client gets wrong, sent after a
// valid head; the proxy must answer 400 (when it still can), close, and
// blame the client.
type clientFaultTest struct {
	name string
	head string
	// body is sent at once; late, after the upstream has the head.
	body, late string
	// closeEarly closes the client's side after body.
	closeEarly bool
	wantStatus int // 0: the client is gone, no answer
}

var clientFaultTests = []clientFaultTest{
	{"chunk size overflows", "Transfer-Encoding: chunked", "ffffffffffffffffff\r\nx\r\n0\r\n\r\n", "", false, 400},
	{"chunk size not hex", "Transfer-Encoding: chunked", "zz\r\nhello\r\n0\r\n\r\n", "", false, 400},
	{"bare LF after chunk data", "Transfer-Encoding: chunked", "5\r\nhello\n0\r\n\r\n", "", false, 400},
	{"bad chunk after the head went upstream", "Transfer-Encoding: chunked", "5\r\nhello\r\n", "zz\r\nworld\r\n0\r\n\r\n", false, 400},
	{"client leaves mid-body", "Content-Length: 100", "0123456789", "", true, 0},
	{"client leaves mid-chunk", "Transfer-Encoding: chunked", "64\r\n0123456789", "", true, 0},
}

// TestClientBodyFaultsAreTheClients: a malformed request body is answered
// 400 and the connection closed (RFC 9112 §7.1); a client that leaves
// mid-body gets nothing. Either way the log blames the client, never the
// upstream, and says no 502.
func TestClientBodyFaultsAreTheClients(t *testing.T) {
	upstreams := []struct {
		name  string
		start func(t *testing.T) *scriptedOrigin
		peer  Peer
	}{
		{"http/1.1", func(t *testing.T) *scriptedOrigin {
			return startScriptedOrigin(t, func(n int, c net.Conn) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			})
		}, Peer{}},
		{"h2c", func(t *testing.T) *scriptedOrigin {
			return startScriptedH2Origin(t, func(n int, fr *http2.Framer, id uint32) bool {
				h2Answer(fr, id, "ok")
				return true
			})
		}, Peer{ALPN: ALPNH2}},
	}
	for _, up := range upstreams {
		for _, tc := range clientFaultTests {
			t.Run(up.name+"/"+tc.name, func(t *testing.T) {
				o := up.start(t)
				clientFault(t, o, up.peer, tc)
			})
		}
	}
}

func clientFault(t *testing.T, o *scriptedOrigin, peer Peer, tc clientFaultTest) {
	addr, logs := faultyFront(t, o.addr, peer)
	k := dialKeepAlive(t, addr)
	sendRaw(t, k, "POST /upload HTTP/1.1\r\nHost: x\r\n"+tc.head+"\r\n\r\n"+tc.body)
	if tc.late != "" {
		select {
		case <-o.heads:
		case <-time.After(5 * time.Second):
			t.Fatal("the request head never reached the upstream")
		}
		sendRaw(t, k, tc.late)
	}
	if tc.closeEarly {
		k.c.(*net.TCPConn).CloseWrite()
	}
	out, _ := io.ReadAll(k.r)
	switch {
	case tc.wantStatus == 0 && len(out) > 0:
		t.Errorf("a client that left got %q", out)
	case tc.wantStatus != 0 && !strings.HasPrefix(string(out), fmt.Sprintf("HTTP/1.1 %d ", tc.wantStatus)):
		t.Errorf("answer %q, want %d", firstLine(string(out)), tc.wantStatus)
	}
	rec := logs.waitFor(t, "request failed")
	if rec["fault"] != "client" || rec["status"] != fmt.Sprint(tc.wantStatus) {
		t.Errorf("logged fault %q status %q, want client %d: %v", rec["fault"], rec["status"], tc.wantStatus, rec)
	}
	if rec["level"] == slog.LevelWarn.String() || rec["level"] == slog.LevelError.String() {
		t.Errorf("a client's fault logged at %s: %v", rec["level"], rec)
	}
}

// TestFaultOf classifies the errors that end requests.
func TestFaultOf(t *testing.T) {
	tests := []struct {
		err        error
		fault      Fault
		wantStatus int
	}{
		{nil, NoFault, 0},
		{ErrNoHealthyUpstream, UpstreamFault, 503},
		{fmt.Errorf("%w: x: %w", ErrUpstreamTimeout, context.DeadlineExceeded), UpstreamFault, 504},
		{fmt.Errorf("%w: x", ErrUpstreamConnect), UpstreamFault, 502},
		{fmt.Errorf("%w: x", ErrUpstreamProtocol), UpstreamFault, 502},
		{fmt.Errorf("%w: x", ErrFilter), ProxyFault, 500},
		{errors.New("response filter: boom"), ProxyFault, 502},
		{fmt.Errorf("%w: reading request body: %w", ErrDownstream, io.ErrUnexpectedEOF), ClientFault, 0},
		{fmt.Errorf("%w: %w", ErrDownstream, timeoutError{}), ClientFault, 408},
		{fmt.Errorf("%w: reading request body: %w", ErrDownstream, malformedChunk()), ClientFault, 400},
	}
	for _, tc := range tests {
		if got := FaultOf(tc.err); got != tc.fault {
			t.Errorf("FaultOf(%v) = %v, want %v", tc.err, got, tc.fault)
		}
		if tc.err == nil {
			continue
		}
		if got := statusFor(tc.err); got != tc.wantStatus {
			t.Errorf("statusFor(%v) = %d, want %d", tc.err, got, tc.wantStatus)
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// malformedChunk returns the error h1 gives for a bad chunk size.
func malformedChunk() error {
	r := h1.NewReader(strings.NewReader("zz\r\n"))
	_, err := io.ReadAll(r.BodyChunked(nil))
	return err
}

// TestResponseBytesFlowAsTheyArrive: whatever the client's Connection
// header and the upstream's protocol and framing, the response head and
// every body byte reach the client as the upstream sends them; a response
// the upstream leaves unfinished ends with a close and is logged as
// truncated, the upstream's fault.
func TestResponseBytesFlowAsTheyArrive(t *testing.T) {
	// Each upstream sends its head and "0123456789", waits on more, then
	// sends "abcdefghij" and ends the response, unless it stalls.
	h1Upstream := func(head, first, rest string) func(*testing.T, chan struct{}, bool) (string, Peer) {
		return func(t *testing.T, more chan struct{}, stall bool) (string, Peer) {
			o := startScriptedOrigin(t, func(n int, c net.Conn) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\n"+head+"\r\n\r\n"+first)
				<-more
				if !stall {
					io.WriteString(c, rest)
				}
				return !stall
			})
			return o.addr, Peer{}
		}
	}
	h2Upstream := func(length string) func(*testing.T, chan struct{}, bool) (string, Peer) {
		return func(t *testing.T, more chan struct{}, stall bool) (string, Peer) {
			o := startScriptedH2Origin(t, func(n int, fr *http2.Framer, id uint32) bool {
				var block bytes.Buffer
				enc := hpack.NewEncoder(&block)
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				if length != "" {
					enc.WriteField(hpack.HeaderField{Name: "content-length", Value: length})
				}
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
				fr.WriteData(id, false, []byte("0123456789"))
				<-more
				if !stall {
					fr.WriteData(id, true, []byte("abcdefghij"))
				}
				return !stall
			})
			return o.addr, Peer{ALPN: ALPNH2}
		}
	}
	upstreams := []struct {
		name  string
		start func(t *testing.T, more chan struct{}, stall bool) (string, Peer)
	}{
		{"http/1.1 length", h1Upstream("Content-Length: 20", "0123456789", "abcdefghij")},
		{"http/1.1 chunked", h1Upstream("Transfer-Encoding: chunked", "a\r\n0123456789\r\n", "a\r\nabcdefghij\r\n0\r\n\r\n")},
		{"h2c length", h2Upstream("20")},
		{"h2c unknown length", h2Upstream("")},
	}
	for _, conn := range []string{"keep-alive", "close"} {
		for _, up := range upstreams {
			for _, stall := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/stall=%v", conn, up.name, stall), func(t *testing.T) {
					more := make(chan struct{})
					backend, peer := up.start(t, more, stall)
					t.Cleanup(func() { close(more) })
					if stall {
						peer.Timeouts.Read = 300 * time.Millisecond
					}
					addr, logs := faultyFront(t, backend, peer)
					k := dialKeepAlive(t, addr)
					k.c.SetDeadline(time.Now().Add(3 * time.Second))
					sendRaw(t, k, "GET / HTTP/1.1\r\nHost: x\r\nConnection: "+conn+"\r\n\r\n")
					resp, err := http.ReadResponse(k.r, nil)
					if err != nil {
						t.Fatalf("no head while the upstream holds the rest of its body: %v", err)
					}
					first := make([]byte, 10)
					if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "0123456789" {
						t.Fatalf("first body bytes %q, %v: want them before the rest exists", first, err)
					}
					if !stall {
						more <- struct{}{}
						rest, err := io.ReadAll(resp.Body)
						if err != nil || string(rest) != "abcdefghij" {
							t.Fatalf("rest of the body %q, %v", rest, err)
						}
						return
					}
					if rest, err := io.ReadAll(resp.Body); err == nil {
						t.Fatalf("a truncated response reached the client as complete (%q more)", rest)
					}
					rec := logs.waitFor(t, "response truncated")
					if rec["fault"] != "upstream" || rec["status"] != "200" {
						t.Errorf("logged %v, want the upstream's fault after status 200", rec)
					}
				})
			}
		}
	}
}

// startScriptedH2Origin is a prior-knowledge HTTP/2 (h2c) upstream that
// counts the requests (HEADERS frames) it receives on any connection and
// lets answer reply to request n on framer fr (stream id) once its body
// ended; answer returns false to close the connection after it.
func startScriptedH2Origin(t *testing.T, answer func(n int, fr *http2.Framer, id uint32) bool) *scriptedOrigin {
	t.Helper()
	return listenOrigin(t, func(o *scriptedOrigin, c net.Conn) { o.serveH2(c, answer) })
}

func (o *scriptedOrigin) serveH2(c net.Conn, answer func(int, *http2.Framer, uint32) bool) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	ended := map[uint32]int{} // request number of the streams whose body is still coming
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			n := o.record(fmt.Sprint("stream ", f.StreamID))
			if !f.StreamEnded() {
				ended[f.StreamID] = n
			} else if !answer(n, fr, f.StreamID) {
				return
			}
		case *http2.DataFrame:
			if n, ok := ended[f.StreamID]; ok && f.StreamEnded() {
				delete(ended, f.StreamID)
				if !answer(n, fr, f.StreamID) {
					return
				}
			}
		}
	}
}

// h2Answer writes a complete response with body to stream id.
func h2Answer(fr *http2.Framer, id uint32, body string) {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	enc.WriteField(hpack.HeaderField{Name: "content-length", Value: fmt.Sprint(len(body))})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
	fr.WriteData(id, true, []byte(body))
}

// TestH2UpstreamRequestIsResentOnlyWhenUnprocessed: over HTTP/2 a request
// is sent again only when the upstream said it never processed it (a
// GOAWAY whose last stream is below it, REFUSED_STREAM); a malformed
// response is the upstream's 502 and the request is not repeated.
func TestH2UpstreamRequestIsResentOnlyWhenUnprocessed(t *testing.T) {
	tests := []struct {
		name                 string
		second               func(fr *http2.Framer, id uint32) bool
		wantStatus, wantSent int
	}{
		{"GOAWAY below the stream", func(fr *http2.Framer, id uint32) bool {
			fr.WriteGoAway(id-2, http2.ErrCodeNo, nil)
			return false
		}, 200, 3},
		{"REFUSED_STREAM", func(fr *http2.Framer, id uint32) bool {
			fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			return true
		}, 200, 3},
		{"malformed header block", func(fr *http2.Framer, id uint32) bool {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff}, EndHeaders: true})
			return true
		}, 502, 2},
		{"GOAWAY that covers the stream, then close", func(fr *http2.Framer, id uint32) bool {
			fr.WriteGoAway(id, http2.ErrCodeNo, nil)
			return false
		}, 502, 2},
		{"stream reset with INTERNAL_ERROR", func(fr *http2.Framer, id uint32) bool {
			fr.WriteRSTStream(id, http2.ErrCodeInternal)
			return true
		}, 502, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := startScriptedH2Origin(t, func(n int, fr *http2.Framer, id uint32) bool {
				if n == 2 {
					return tc.second(fr, id)
				}
				h2Answer(fr, id, fmt.Sprint("answer ", n))
				return true
			})
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{ALPN: ALPNH2, Timeouts: Timeouts{Read: 2 * time.Second}}}})
			k := dialKeepAlive(t, addr)
			for i, method := range []string{"GET", "DELETE"} {
				sendRaw(t, k, method+" / HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, body, err := finalResponse(k, method)
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				if i == 0 {
					continue
				}
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("second request answered %d %q, want %d", resp.StatusCode, body, tc.wantStatus)
				}
			}
			if got := o.requests(); len(got) != tc.wantSent {
				t.Errorf("the upstream received %d requests %q, want %d", len(got), got, tc.wantSent)
			}
		})
	}
}

// TestAcceptEachWaitsForEveryConnection checks that acceptEach's cleanup
// returns only once every connection it accepted has been served, even
// when connections arrive as the test ends: a connection accepted just
// before the listener closes must not be served after the test is over.
func TestAcceptEachWaitsForEveryConnection(t *testing.T) {
	var mu sync.Mutex
	var started, finished int
	for i := range 200 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			testenv.AcceptEach(t, ln, func(c net.Conn) {
				mu.Lock()
				started++
				mu.Unlock()
				c.Read(make([]byte, 1))
				mu.Lock()
				finished++
				mu.Unlock()
			})
			// Dial as the test ends, so that accepts race the cleanup.
			for range 4 {
				go func() {
					if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
						c.Close()
					}
				}()
			}
		})
		mu.Lock()
		s, f := started, finished
		mu.Unlock()
		if s != f {
			t.Fatalf("after test %d: %d connections served, %d finished; acceptEach's cleanup returned while connections were still being served", i, s, f)
		}
	}
}
