package l7

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client speaks HTTP/2 to the server under test frame by frame, so that
// a test can send what no well-behaved client would and see every frame
// the server answers with. It is not safe for concurrent use.
type h2Client struct {
	t   testing.TB
	nc  net.Conn
	fr  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
	dec *hpack.Decoder

	// serverSettings are the settings of the server's preface.
	serverSettings map[http2.SettingID]uint32
	// manualWindow stops the client from returning the window of the
	// DATA it receives, for flow-control tests.
	manualWindow bool
	// connWin and initWin are the receive windows the client announced:
	// what the server may still send on the connection, and what each new
	// stream starts with.
	connWin, initWin int64
	streams          map[uint32]*h2Response
	// pings are the payloads of PING acknowledgements received;
	// settingsAcks counts SETTINGS acknowledgements.
	pings        [][8]byte
	settingsAcks int
	// goAway is the server's GOAWAY, once received; eof says the server
	// closed the connection.
	goAway *h2GoAway
	eof    bool
	// pending gathers a header block split over CONTINUATION frames.
	pending      []byte
	pendingID    uint32
	pendingEnd   bool
	pendingSplit bool
}

type h2GoAway struct {
	lastID uint32
	code   http2.ErrCode
}

// h2Response is what the server sent on one stream.
type h2Response struct {
	status  int
	header  map[string][]string
	body    []byte
	trailer map[string][]string
	// interim holds the 1xx statuses that came before the response.
	interim []int
	// blocks are the raw header blocks, split says one was sent in more
	// than one frame.
	blocks [][]byte
	split  bool
	// reset is the RST_STREAM code, when the server reset the stream.
	reset    http2.ErrCode
	wasReset bool
	ended    bool
	// win is what the server may still send on the stream.
	win int64
}

func (r *h2Response) done() bool { return r.ended || r.wasReset }

const h2TestTimeout = 10 * time.Second

// dialH2 opens a prior-knowledge HTTP/2 connection to addr, sends the
// client preface with settings, and reads the server's SETTINGS.
func dialH2(t testing.TB, addr string, settings ...http2.Setting) *h2Client {
	t.Helper()
	c := dialH2Raw(t, addr)
	c.preface(settings...)
	for c.serverSettings == nil {
		if !c.readFrame() {
			t.Fatal("connection ended before the server's SETTINGS")
		}
	}
	return c
}

// dialH2Raw connects to addr and sends the connection preface's magic
// string, leaving its SETTINGS to the caller.
func dialH2Raw(t testing.TB, addr string) *h2Client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := newH2Client(t, nc)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	return c
}

func newH2Client(t testing.TB, nc net.Conn) *h2Client {
	nc.SetDeadline(time.Now().Add(h2TestTimeout))
	c := &h2Client{t: t, nc: nc, fr: http2.NewFramer(nc, nc), connWin: 65535, initWin: 65535, streams: map[uint32]*h2Response{}}
	c.fr.AllowIllegalWrites = true
	c.fr.SetMaxReadFrameSize(1 << 24)
	c.enc = hpack.NewEncoder(&c.buf)
	c.dec = hpack.NewDecoder(4096, nil)
	return c
}

// preface sends the client's SETTINGS.
func (c *h2Client) preface(settings ...http2.Setting) {
	for _, s := range settings {
		if s.ID == http2.SettingInitialWindowSize {
			c.initWin = int64(s.Val)
		}
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		c.t.Fatal(err)
	}
}

// block encodes name/value pairs as a header block.
func (c *h2Client) block(fields ...string) []byte {
	c.buf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(c.buf.Bytes())
}

// headers sends the fields as one header block: a HEADERS frame and as
// many CONTINUATION frames as the 16 KiB frame size needs.
func (c *h2Client) headers(id uint32, endStream bool, fields ...string) {
	c.t.Helper()
	c.stream(id)
	block := c.block(fields...)
	frag := block[:min(len(block), 16<<10)]
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: endStream, EndHeaders: len(frag) == len(block)})
	for block = block[len(frag):]; err == nil && len(block) > 0; block = block[len(frag):] {
		frag = block[:min(len(block), 16<<10)]
		err = c.fr.WriteContinuation(id, len(frag) == len(block), frag)
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// get sends a GET for path on stream id.
func (c *h2Client) get(id uint32, path string, extra ...string) {
	c.t.Helper()
	c.headers(id, true, append([]string{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", path}, extra...)...)
}

func (c *h2Client) data(id uint32, endStream bool, p string) {
	c.t.Helper()
	if err := c.fr.WriteData(id, endStream, []byte(p)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *h2Client) stream(id uint32) *h2Response {
	r := c.streams[id]
	if r == nil {
		r = &h2Response{win: c.initWin}
		c.streams[id] = r
	}
	return r
}

// readFrame reads and records one frame; it reports false once the
// connection ended.
func (c *h2Client) readFrame() bool {
	c.t.Helper()
	if c.eof {
		return false
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("no frame from the server within %v", h2TestTimeout)
		}
		c.eof = true
		return false
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			c.settingsAcks++
			break
		}
		s := map[http2.SettingID]uint32{}
		f.ForeachSetting(func(st http2.Setting) error { s[st.ID] = st.Val; return nil })
		if c.serverSettings == nil {
			c.serverSettings = s
		}
		c.fr.WriteSettingsAck()
	case *http2.PingFrame:
		if f.IsAck() {
			c.pings = append(c.pings, f.Data)
		}
	case *http2.GoAwayFrame:
		c.goAway = &h2GoAway{lastID: f.LastStreamID, code: f.ErrCode}
	case *http2.RSTStreamFrame:
		r := c.stream(f.StreamID)
		r.wasReset, r.reset = true, f.ErrCode
	case *http2.DataFrame:
		c.onData(f)
	case *http2.HeadersFrame:
		c.pending, c.pendingID, c.pendingEnd, c.pendingSplit = append(c.pending[:0], f.HeaderBlockFragment()...), f.StreamID, f.StreamEnded(), false
		if f.HeadersEnded() {
			c.onBlock()
		}
	case *http2.ContinuationFrame:
		c.pending, c.pendingSplit = append(c.pending, f.HeaderBlockFragment()...), true
		if f.HeadersEnded() {
			c.onBlock()
		}
	}
	return true
}

func (c *h2Client) onData(f *http2.DataFrame) {
	r := c.stream(f.StreamID)
	n := int64(f.Length)
	c.connWin -= n
	r.win -= n
	if c.connWin < 0 || r.win < 0 {
		c.t.Errorf("stream %d: DATA of %d bytes beyond the window (connection %d, stream %d left)", f.StreamID, n, c.connWin+n, r.win+n)
	}
	r.body = append(r.body, f.Data()...)
	if f.StreamEnded() {
		r.ended = true
	}
	if !c.manualWindow && n > 0 {
		c.windowUpdate(0, uint32(n))
		if !r.ended {
			c.windowUpdate(f.StreamID, uint32(n))
		}
	}
}

// windowUpdate gives the server n more bytes of window on stream id (0:
// the connection).
func (c *h2Client) windowUpdate(id uint32, n uint32) {
	if id == 0 {
		c.connWin += int64(n)
	} else {
		c.stream(id).win += int64(n)
	}
	c.fr.WriteWindowUpdate(id, n)
}

func (c *h2Client) onBlock() {
	r := c.stream(c.pendingID)
	block := bytes.Clone(c.pending)
	r.blocks = append(r.blocks, block)
	r.split = r.split || c.pendingSplit
	fields, err := c.dec.DecodeFull(block)
	if err != nil {
		c.t.Errorf("stream %d: undecodable header block from the server: %v", c.pendingID, err)
		return
	}
	h := map[string][]string{}
	status := 0
	for _, f := range fields {
		if f.Name == ":status" {
			status, _ = strconv.Atoi(f.Value)
			continue
		}
		h[f.Name] = append(h[f.Name], f.Value)
	}
	switch {
	case status >= 100 && status < 200:
		r.interim = append(r.interim, status)
	case status != 0:
		r.status, r.header = status, h
	default:
		r.trailer = h
	}
	if c.pendingEnd {
		r.ended = true
	}
}

// response reads until stream id ended or was reset, and returns it.
func (c *h2Client) response(id uint32) *h2Response {
	c.t.Helper()
	r := c.stream(id)
	for !r.done() {
		if !c.readFrame() {
			c.t.Fatalf("connection ended before stream %d did (GOAWAY %+v)", id, c.goAway)
		}
	}
	return r
}

// until reads frames until cond holds or the connection ends, and
// reports whether cond held.
func (c *h2Client) until(cond func() bool) bool {
	c.t.Helper()
	for !cond() {
		if !c.readFrame() {
			return cond()
		}
	}
	return true
}

// closed reads until the server closed the connection and returns its
// GOAWAY (nil when it sent none).
func (c *h2Client) closed() *h2GoAway {
	c.t.Helper()
	for c.readFrame() {
	}
	return c.goAway
}

func (r *h2Response) String() string {
	var b strings.Builder
	b.WriteString("status " + strconv.Itoa(r.status))
	if r.wasReset {
		b.WriteString(", reset " + r.reset.String())
	}
	b.WriteString(", body " + strconv.Quote(string(r.body)))
	return b.String()
}
