package l7

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/net/http2"
)

// Tests of the downstream HTTP/2 server, frame by frame (h2client_test.go).

// h2Front serves the proxy, over an origin answering with h, on a plain
// loopback port that takes prior-knowledge HTTP/2.
func h2Front(t testing.TB, h http.HandlerFunc, configure ...func(*Server)) (string, *origin) {
	t.Helper()
	o := startOrigin(t, h)
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	srv := &Server{Proxy: &Balanced{LB: pool}}
	for _, f := range configure {
		f(srv)
	}
	return startProxy(t, srv), o
}

// gate is a RequestFilter that holds every request until released, so
// that a test controls how many streams are in flight, and answers 200
// without an upstream afterwards. It never reads a request body.
type gate struct {
	*Balanced
	held    atomic.Int64
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{Balanced: &Balanced{}, release: make(chan struct{})} }

// open lets the held requests, and all later ones, through.
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) RequestFilter(s *Session) (bool, error) {
	g.held.Add(1)
	<-g.release
	return true, s.Respond(200, nil, []byte("released"))
}

func gateFront(t *testing.T, configure ...func(*Server)) (string, *gate) {
	t.Helper()
	g := newGate()
	srv := &Server{Proxy: g}
	for _, f := range configure {
		f(srv)
	}
	addr := startProxy(t, srv)
	t.Cleanup(g.open) // before startProxy's Close, which waits for the requests
	return addr, g
}

// waitHeld waits until n requests are held at the gate.
func (g *gate) waitHeld(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(h2TestTimeout)
	for g.held.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests reached the gate, want %d", g.held.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// completeBodies counts the requests whose whole body an origin read.
type completeBodies struct{ n atomic.Int64 }

func (c *completeBodies) handler(w http.ResponseWriter, r *http.Request) {
	if body, err := io.ReadAll(r.Body); err == nil && len(body) > 0 {
		c.n.Add(1)
	}
	io.WriteString(w, "ok")
}

var h2Base = []string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "/"}

func with(fields ...string) []string { return append(slices.Clone(h2Base), fields...) }

func TestH2MalformedRequestsAreReset(t *testing.T) {
	var bodies completeBodies
	addr, o := h2Front(t, bodies.handler)
	post := []string{":method", "POST", ":scheme", "http", ":authority", "front.example", ":path", "/"}
	tests := []struct {
		name   string
		fields []string
		body   string // sent with END_STREAM after the head; "" ends with the head
	}{
		{"uppercase field name", with("X-Upper", "1"), ""},
		{"connection", with("connection", "keep-alive"), ""},
		{"keep-alive", with("keep-alive", "timeout=5"), ""},
		{"proxy-connection", with("proxy-connection", "close"), ""},
		{"transfer-encoding", with("transfer-encoding", "chunked"), ""},
		{"upgrade", with("upgrade", "websocket"), ""},
		{"te other than trailers", with("te", "gzip"), ""},
		{"field name with a colon", with("x:a", "1"), ""},
		{"field name with a space", with("x a", "1"), ""},
		{"empty field name", with("", "1"), ""},
		{"value with CRLF (header injection)", with("x-a", "1\r\nx-injected: 1"), ""},
		{"value with NUL", with("x-a", "a\x00b"), ""},
		{"value with leading space", with("x-a", " v"), ""},
		{"value with trailing tab", with("x-a", "v\t"), ""},
		{"duplicate :path", with(":path", "/again"), ""},
		{"unknown pseudo-header", with(":protocol", "websocket"), ""},
		{"pseudo-header after a field", []string{":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/", ":authority", "front.example"}, ""},
		{"no :method", []string{":scheme", "http", ":authority", "front.example", ":path", "/"}, ""},
		{"no :path", []string{":method", "GET", ":scheme", "http", ":authority", "front.example"}, ""},
		{"no :scheme", []string{":method", "GET", ":authority", "front.example", ":path", "/"}, ""},
		{"empty :path", []string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", ""}, ""},
		{":path with a space (request-line smuggling)", []string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "/a HTTP/1.1\r\nHost: evil\r\n\r\nGET /b"}, ""},
		{"relative :path", []string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "a"}, ""},
		{":path * outside OPTIONS", []string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "*"}, ""},
		{":method with a space", []string{":method", "GET /x", ":scheme", "http", ":authority", "front.example", ":path", "/"}, ""},
		{"invalid :scheme", []string{":method", "GET", ":scheme", "ht tp", ":authority", "front.example", ":path", "/"}, ""},
		{":authority with a path", []string{":method", "GET", ":scheme", "http", ":authority", "front.example/evil", ":path", "/"}, ""},
		{":authority with userinfo", []string{":method", "GET", ":scheme", "http", ":authority", "user@front.example", ":path", "/"}, ""},
		{"host disagrees with :authority", with("host", "other.example"), ""},
		{"two hosts", []string{":method", "GET", ":scheme", "http", ":path", "/", "host", "a.example", "host", "b.example"}, ""},
		{"content-length not a number", append(slices.Clone(post), "content-length", "5x"), "hello"},
		{"negative content-length", append(slices.Clone(post), "content-length", "-1"), "hello"},
		{"two content-lengths", append(slices.Clone(post), "content-length", "5", "content-length", "6"), "hello"},
		{"content-length on a request ended by its head", with("content-length", "5"), ""},
		{"DATA beyond content-length", append(slices.Clone(post), "content-length", "5"), "hello!"},
		{"DATA short of content-length", append(slices.Clone(post), "content-length", "5"), "hi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH2(t, addr)
			c.headers(1, tc.body == "", tc.fields...)
			if tc.body != "" {
				c.data(1, true, tc.body)
			}
			if r := c.response(1); !r.wasReset || r.reset != http2.ErrCodeProtocol {
				t.Fatalf("got %v, want the stream reset with PROTOCOL_ERROR", r)
			}
			// A malformed request is a stream error: the connection goes on.
			c.get(3, "/next")
			if r := c.response(3); r.status != 200 {
				t.Fatalf("next request on the connection: %v", r)
			}
		})
	}
	// Every request with a bad head was refused before it went upstream;
	// the ones whose DATA broke their Content-Length went with their head
	// but never whole.
	if n, good := o.requests.Load(), int64(len(tests)); n < good || n > good+2 {
		t.Errorf("the origin saw %d requests, want the %d good ones and at most the 2 heads whose DATA broke their Content-Length", n, good)
	}
	if n := bodies.n.Load(); n != 0 {
		t.Errorf("%d bodies that disagreed with their Content-Length reached the origin whole", n)
	}
}

func TestH2RequestsTheProxyAnswersItself(t *testing.T) {
	addr, o := h2Front(t, hello("o"))
	many := slices.Clone(h2Base)
	for i := range 101 {
		many = append(many, fmt.Sprintf("x-f%d", i), "v")
	}
	big := slices.Clone(h2Base)
	for i := range 12 {
		big = append(big, fmt.Sprintf("x-big%d", i), strings.Repeat("b", 3000))
	}
	tests := []struct {
		name   string
		fields []string
		want   int
	}{
		{"CONNECT", []string{":method", "CONNECT", ":authority", "front.example:443"}, 501},
		{"no :authority nor host", []string{":method", "GET", ":scheme", "http", ":path", "/"}, 400},
		{"more fields than the limit", many, 431},
		{"head larger than the limit (and than a frame)", big, 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH2(t, addr)
			c.headers(1, true, tc.fields...)
			if r := c.response(1); r.status != tc.want || !r.ended {
				t.Fatalf("got %v, want status %d", r, tc.want)
			}
		})
	}
	if n := o.requests.Load(); n != 0 {
		t.Errorf("%d requests the proxy should have answered reached the origin", n)
	}
}

func TestH2RequestHeadsReachTheUpstreamAsHTTP11(t *testing.T) {
	type seen struct{ proto, host, target, cookie, custom string }
	got := make(chan seen, 1)
	addr, _ := h2Front(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Proto, r.Host, r.RequestURI, r.Header.Get("Cookie"), r.Header.Get("X-Custom")}
	})
	tests := []struct {
		name   string
		fields []string
		want   seen
	}{
		{"authority becomes Host, cookie crumbs join",
			[]string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "/p?q=1", "cookie", "a=1", "x-custom", "v", "cookie", "b=2"},
			seen{"HTTP/1.1", "front.example", "/p?q=1", "a=1; b=2", "v"}},
		{"host without :authority",
			[]string{":method", "GET", ":scheme", "https", ":path", "/", "host", "h.example:8443"},
			seen{"HTTP/1.1", "h.example:8443", "/", "", ""}},
		{"host equal to :authority, te: trailers", with("host", "front.example", "te", "trailers"),
			seen{"HTTP/1.1", "front.example", "/", "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH2(t, addr)
			c.headers(1, true, tc.fields...)
			if r := c.response(1); r.status != 200 {
				t.Fatalf("%v", r)
			}
			if s := <-got; s != tc.want {
				t.Fatalf("the origin saw %+v, want %+v", s, tc.want)
			}
		})
	}
}

func TestH2ConnectionErrors(t *testing.T) {
	addr, _ := h2Front(t, hello("o"))
	flood := bytes.Repeat([]byte{0x82}, 16<<10) // ":method: GET", over and over
	tests := []struct {
		name string
		send func(c *h2Client)
		want http2.ErrCode
	}{
		{"DATA on an idle stream", func(c *h2Client) { c.data(1, true, "x") }, http2.ErrCodeProtocol},
		{"HEADERS on a server stream", func(c *h2Client) { c.get(2, "/") }, http2.ErrCodeProtocol},
		{"stream identifier going down", func(c *h2Client) {
			c.get(5, "/")
			c.response(5)
			c.get(3, "/")
		}, http2.ErrCodeProtocol},
		{"HEADERS on a closed stream", func(c *h2Client) {
			c.get(1, "/")
			c.response(1)
			c.get(1, "/")
		}, http2.ErrCodeStreamClosed},
		{"WINDOW_UPDATE of 0 on the connection", func(c *h2Client) { c.fr.WriteWindowUpdate(0, 0) }, http2.ErrCodeProtocol},
		{"connection send window overflow", func(c *h2Client) { c.fr.WriteWindowUpdate(0, 1<<31-1) }, http2.ErrCodeFlowControl},
		{"WINDOW_UPDATE on an idle stream", func(c *h2Client) { c.fr.WriteWindowUpdate(7, 1) }, http2.ErrCodeProtocol},
		{"RST_STREAM on an idle stream", func(c *h2Client) { c.fr.WriteRSTStream(7, http2.ErrCodeCancel) }, http2.ErrCodeProtocol},
		{"PUSH_PROMISE from a client", func(c *h2Client) {
			c.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: c.block(h2Base...), EndHeaders: true})
		}, http2.ErrCodeProtocol},
		{"undecodable header block", func(c *h2Client) {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, EndStream: true, EndHeaders: true})
		}, http2.ErrCodeCompression},
		{"frame larger than SETTINGS_MAX_FRAME_SIZE", func(c *h2Client) {
			c.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "front.example", ":path", "/")
			c.fr.WriteData(1, true, make([]byte, 20000))
		}, http2.ErrCodeFrameSize},
		{"SETTINGS_ENABLE_PUSH of 2", func(c *h2Client) { c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 2}) }, http2.ErrCodeProtocol},
		{"SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1", func(c *h2Client) {
			c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}, http2.ErrCodeFlowControl},
		{"SETTINGS_MAX_FRAME_SIZE under 16384", func(c *h2Client) { c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 100}) }, http2.ErrCodeProtocol},
		{"CONTINUATION of another stream", func(c *h2Client) {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(h2Base...), EndStream: true})
			c.fr.WriteContinuation(3, true, nil)
		}, http2.ErrCodeProtocol},
		{"CONTINUATION flood", func(c *h2Client) {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(h2Base...), EndStream: true})
			for range 64 { // 1 MiB: far beyond the bound, and the test's own
				if c.fr.WriteContinuation(1, false, flood) != nil {
					return
				}
			}
		}, http2.ErrCodeEnhanceYourCalm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH2(t, addr)
			tc.send(c)
			g := c.closed()
			if g == nil || g.code != tc.want {
				t.Fatalf("connection ended with GOAWAY %+v, want code %v", g, tc.want)
			}
		})
	}
}

func TestH2PrefaceMustEndWithSettings(t *testing.T) {
	addr, _ := h2Front(t, hello("o"))
	c := dialH2Raw(t, addr)
	c.fr.WritePing(false, [8]byte{1})
	if g := c.closed(); g == nil || g.code != http2.ErrCodeProtocol {
		t.Fatalf("a preface without SETTINGS ended with GOAWAY %+v, want PROTOCOL_ERROR", g)
	}
}

func TestH2ControlFrames(t *testing.T) {
	addr, _ := h2Front(t, hello("o"))
	c := dialH2(t, addr)
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: h2MaxStreams,
		http2.SettingInitialWindowSize:    h2StreamWindow,
		http2.SettingMaxHeaderListSize:    32 << 10,
	}
	for id, v := range want {
		if got := c.serverSettings[id]; got != v {
			t.Errorf("server announced %v = %d, want %d", id, got, v)
		}
	}
	c.fr.WritePing(false, [8]byte{'w', 'e', 'i', 'r', 1, 2, 3, 4})
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 10})
	c.fr.WriteRawFrame(0xfa, 0, 0, []byte("unknown frame types are ignored"))
	if !c.until(func() bool { return len(c.pings) == 1 && c.settingsAcks == 2 }) {
		t.Fatalf("got %d PING acks and %d SETTINGS acks, want 1 and 2 (GOAWAY %+v)", len(c.pings), c.settingsAcks, c.goAway)
	}
	if c.pings[0] != [8]byte{'w', 'e', 'i', 'r', 1, 2, 3, 4} {
		t.Errorf("PING ack carries %q, not the PING's payload", c.pings[0])
	}
	c.get(3, "/")
	if r := c.response(3); r.status != 200 || string(r.body) != "hello from o" {
		t.Fatalf("request after the control frames: %v", r)
	}
}

func TestH2ResponseHeadsAndTrailers(t *testing.T) {
	addr, _ := h2Front(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/big-head":
			w.Header().Set("X-Big", strings.Repeat("h", 20000))
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			w.Write(bytes.ToUpper(body))
			w.Header().Set("X-Sum", "resp-"+r.Trailer.Get("X-Req-Sum"))
			return
		case "/no-content":
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Connection", "x-hop")
		w.Header().Set("X-Hop", "hop-by-hop, dropped")
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "body")
	})

	t.Run("hop-by-hop fields dropped", func(t *testing.T) {
		c := dialH2(t, addr)
		c.get(1, "/")
		r := c.response(1)
		if r.status != 200 || string(r.body) != "body" {
			t.Fatalf("%v", r)
		}
		for _, name := range []string{"connection", "keep-alive", "x-hop", "transfer-encoding"} {
			if v, ok := r.header[name]; ok {
				t.Errorf("response carries %s: %q", name, v)
			}
		}
		if got := r.header["content-length"]; !slices.Equal(got, []string{"4"}) {
			t.Errorf("content-length %q, want 4", got)
		}
	})
	t.Run("head over 16 KiB in CONTINUATION", func(t *testing.T) {
		c := dialH2(t, addr)
		c.get(1, "/big-head")
		r := c.response(1)
		if r.status != 200 || len(r.header["x-big"]) != 1 || len(r.header["x-big"][0]) != 20000 {
			t.Fatalf("%v, x-big of %d bytes", r, len(r.header["x-big"]))
		}
		if !r.split {
			t.Fatal("a 20 KB head went out in one frame, over the 16 KiB SETTINGS_MAX_FRAME_SIZE")
		}
	})
	t.Run("HEAD and 204 end with the head", func(t *testing.T) {
		c := dialH2(t, addr)
		c.headers(1, true, ":method", "HEAD", ":scheme", "http", ":authority", "front.example", ":path", "/")
		c.get(3, "/no-content")
		for _, id := range []uint32{1, 3} {
			r := c.response(id)
			if r.status == 0 || !r.ended || len(r.body) != 0 || len(r.blocks) != 1 {
				t.Errorf("stream %d: %v in %d header blocks, want a head ending the stream", id, r, len(r.blocks))
			}
		}
		if got := c.streams[1].header["content-length"]; !slices.Equal(got, []string{"4"}) {
			t.Errorf("HEAD: content-length %q, want the GET's 4", got)
		}
	})
	t.Run("trailers both ways", func(t *testing.T) {
		c := dialH2(t, addr)
		c.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "front.example", ":path", "/trailers", "te", "trailers")
		c.data(1, false, "hello ")
		c.data(1, false, "trailers")
		c.headers(1, true, "x-req-sum", "42")
		r := c.response(1)
		if r.status != 200 || string(r.body) != "HELLO TRAILERS" {
			t.Fatalf("%v", r)
		}
		if got := r.trailer["x-sum"]; !slices.Equal(got, []string{"resp-42"}) {
			t.Fatalf("response trailer x-sum %q, want resp-42 (the request trailer relayed up, the response trailer down)", got)
		}
	})
	t.Run("header table size 0", func(t *testing.T) {
		c := dialH2(t, addr, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		c.get(1, "/")
		r := c.response(1)
		if r.status != 200 || len(r.blocks) == 0 || r.blocks[0][0] != 0x20 {
			t.Fatalf("%v: the first header block after SETTINGS_HEADER_TABLE_SIZE 0 must open with a size update to 0 (0x20), block % x", r, r.blocks)
		}
	})
}

func TestH2ExpectContinue(t *testing.T) {
	addr, _ := h2Front(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", body)
	})
	c := dialH2(t, addr)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "front.example", ":path", "/", "expect", "100-continue", "content-length", "4")
	r := c.stream(1)
	if !c.until(func() bool { return len(r.interim) > 0 || r.done() }) || !slices.Equal(r.interim, []int{100}) {
		t.Fatalf("before the body: interim %v, %v; want 100 Continue", r.interim, r)
	}
	c.data(1, true, "body")
	if r := c.response(1); r.status != 200 || string(r.body) != "got body" {
		t.Fatalf("%v", r)
	}
}

func TestH2StreamErrors(t *testing.T) {
	addr, g := gateFront(t)
	post := []string{":method", "POST", ":scheme", "http", ":authority", "front.example", ":path", "/"}
	c := dialH2(t, addr)

	// Stream 1: DATA beyond the stream's window, which no one reads.
	c.headers(1, false, post...)
	g.waitHeld(t, 1)
	chunk := make([]byte, 16<<10)
	for range h2StreamWindow / len(chunk) {
		c.fr.WriteData(1, false, chunk)
	}
	c.fr.WriteData(1, false, []byte{1})
	if r := c.response(1); r.reset != http2.ErrCodeFlowControl {
		t.Errorf("DATA beyond the stream window: %v, want FLOW_CONTROL_ERROR", r)
	}
	// Stream 3: DATA after the client ended the stream.
	c.headers(3, true, h2Base...)
	c.data(3, true, "late")
	if r := c.response(3); r.reset != http2.ErrCodeStreamClosed {
		t.Errorf("DATA after END_STREAM: %v, want STREAM_CLOSED", r)
	}
	// Stream 5: trailers that do not end the stream.
	c.headers(5, false, post...)
	c.headers(5, false, "x-t", "1")
	if r := c.response(5); r.reset != http2.ErrCodeProtocol {
		t.Errorf("trailers without END_STREAM: %v, want PROTOCOL_ERROR", r)
	}
	// Stream 7: a stream that depends on itself.
	c.fr.WritePriority(7, http2.PriorityParam{StreamDep: 7})
	if r := c.response(7); r.reset != http2.ErrCodeProtocol {
		t.Errorf("PRIORITY on itself: %v, want PROTOCOL_ERROR", r)
	}
	// Stream 9: reset by the client while held; the connection goes on.
	c.headers(9, true, h2Base...)
	c.fr.WriteRSTStream(9, http2.ErrCodeCancel)
	c.headers(11, true, h2Base...)
	g.open()
	if r := c.response(11); r.status != 200 || string(r.body) != "released" {
		t.Fatalf("request after the stream errors: %v", r)
	}
	if c.goAway != nil {
		t.Fatalf("stream errors ended the connection: GOAWAY %+v", c.goAway)
	}
}

func TestH2ConcurrentStreamsBeyondTheLimitAreRefused(t *testing.T) {
	addr, g := gateFront(t)
	c := dialH2(t, addr)
	for i := range h2MaxStreams {
		c.headers(uint32(2*i+1), true, h2Base...)
	}
	g.waitHeld(t, h2MaxStreams)
	over := uint32(2*h2MaxStreams + 1)
	c.headers(over, true, h2Base...)
	if r := c.response(over); r.reset != http2.ErrCodeRefusedStream {
		t.Fatalf("stream %d beyond SETTINGS_MAX_CONCURRENT_STREAMS: %v, want REFUSED_STREAM", h2MaxStreams+1, r)
	}
	g.open()
	for i := range h2MaxStreams {
		if r := c.response(uint32(2*i + 1)); r.status != 200 {
			t.Fatalf("stream %d: %v", 2*i+1, r)
		}
	}
}

// TestH2RapidResetIsBounded plays CVE-2023-44487: streams opened and reset
// at once, faster than the requests they started can finish.
func TestH2RapidResetIsBounded(t *testing.T) {
	addr, g := gateFront(t)
	c := dialH2(t, addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 4 * h2MaxRunning {
			id := uint32(2*i + 1)
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(h2Base...), EndStream: true, EndHeaders: true}) != nil ||
				c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	gone := c.closed()
	<-done
	if gone == nil || gone.code != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("rapid reset ended with GOAWAY %+v, want ENHANCE_YOUR_CALM", gone)
	}
	if n := g.held.Load(); n > h2MaxRunning {
		t.Fatalf("%d requests started, over the bound of %d", n, h2MaxRunning)
	}
}

func TestH2FlowControlOfResponses(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 100<<10/16)
	addr, _ := h2Front(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })

	t.Run("small windows granted as the client reads", func(t *testing.T) {
		c := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
		c.manualWindow = true
		c.get(1, "/")
		r := c.stream(1)
		frames := 0
		for !r.done() {
			n := len(r.body)
			if !c.readFrame() {
				t.Fatal("connection ended")
			}
			if len(r.body) > n {
				frames++
			}
			if r.win == 0 && !r.ended {
				c.windowUpdate(1, 1000)
			}
			if c.connWin < 1000 {
				c.windowUpdate(0, 65535)
			}
		}
		if string(r.body) != big {
			t.Fatalf("body of %d bytes, want %d", len(r.body), len(big))
		}
		if frames < len(big)/1000 {
			t.Fatalf("%d DATA frames for %d bytes through a 1000-byte window", frames, len(big))
		}
	})
	t.Run("window opened by SETTINGS_INITIAL_WINDOW_SIZE", func(t *testing.T) {
		c := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		c.get(1, "/")
		c.fr.WritePing(false, [8]byte{})
		r := c.stream(1)
		if !c.until(func() bool { return len(c.pings) == 1 }) || r.status != 0 || len(r.body) != 0 {
			t.Fatalf("with a window of 0: %v", r)
		}
		c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		r.win += 1 << 20
		c.windowUpdate(0, 1<<20)
		if r := c.response(1); string(r.body) != big {
			t.Fatalf("body of %d bytes, want %d", len(r.body), len(big))
		}
	})
	t.Run("a client that never opens its window is reset", func(t *testing.T) {
		addr, _ := h2Front(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) },
			func(s *Server) { s.WriteTimeout = 200 * time.Millisecond })
		c := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		c.get(1, "/")
		if r := c.response(1); r.reset != http2.ErrCodeInternal || len(r.body) != 0 {
			t.Fatalf("%v, want a reset with INTERNAL_ERROR and no body", r)
		}
	})
}

func TestH2IdleConnectionGoesAway(t *testing.T) {
	addr, _ := h2Front(t, hello("o"), func(s *Server) { s.IdleTimeout = 500 * time.Millisecond })
	c := dialH2(t, addr)
	c.get(1, "/")
	c.response(1)
	start := time.Now()
	g := c.closed()
	if g == nil || g.code != http2.ErrCodeNo || g.lastID != 1 {
		t.Fatalf("idle connection ended with GOAWAY %+v, want NO_ERROR naming stream 1", g)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle connection lasted %v past its last response", d)
	}
}

func TestH2ShutdownFinishesStreamsInFlight(t *testing.T) {
	g := newGate()
	srv := &Server{Proxy: g}
	addr := startProxy(t, srv)
	t.Cleanup(g.open)
	c := dialH2(t, addr)
	c.get(1, "/")
	g.waitHeld(t, 1)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if !c.until(func() bool { return c.goAway != nil }) {
		t.Fatal("no GOAWAY on shutdown")
	}
	if c.goAway.code != http2.ErrCodeNo || c.goAway.lastID != 1 {
		t.Fatalf("GOAWAY %+v, want NO_ERROR naming stream 1", c.goAway)
	}
	// A stream past the GOAWAY's is not served.
	c.get(3, "/")
	g.open()
	if r := c.response(1); r.status != 200 || string(r.body) != "released" {
		t.Fatalf("stream in flight: %v", r)
	}
	c.closed()
	if r := c.stream(3); r.status != 0 || g.held.Load() != 1 {
		t.Fatalf("stream 3, after the GOAWAY: %v, %d requests served", r, g.held.Load())
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(h2TestTimeout):
		t.Fatal("Shutdown did not return after the last stream")
	}
}
