package h2

import (
	"errors"
	"strings"

	"github.com/weir-lb/weir/internal/httpsyntax"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2/hpack"
)

// RequestDecoder turns the fields of a request's header block (RFC 9113
// §8.2, §8.3), as an HPACK decoder emits them, into an h1.Request, or of
// its trailer block into Trailers. Its Field method is the emit function
// to give hpack.NewDecoder. One RequestDecoder serves a connection's
// blocks in turn: StartRequest, StartTrailers or StartDiscard opens each.
// Once grown to the traffic, decoding allocates nothing.
//
// It checks as it goes and remembers the first malformation (Err) and
// whether a limit was passed (TooLarge); FinishRequest completes a
// request's head.
type RequestDecoder struct {
	// MaxBytes bounds a block's decoded size, each field counting its
	// name, value and 32 bytes (RFC 9113 §6.5.2); MaxFields its fields.
	// They must be set, and persist across blocks.
	MaxBytes, MaxFields int
	// Trailers receives the fields of a trailer block.
	Trailers h1.Header

	req       *h1.Request
	trailer   bool
	endStream bool
	bad       error
	tooLarge  bool

	size, fields int

	method, scheme, path, authority, regular, hostAdded bool

	host     []byte
	declared int64
	cookie   []byte
}

// StartRequest opens a request's header block, to be decoded into req,
// whose Method, Target, Host and Header must be empty. endStream says
// the HEADERS frame ended the stream (a request without a body).
func (d *RequestDecoder) StartRequest(req *h1.Request, endStream bool) {
	d.start()
	d.req, d.endStream = req, endStream
}

// StartTrailers opens a trailer block, decoded into Trailers.
func (d *RequestDecoder) StartTrailers() {
	d.start()
	d.trailer = true
}

// StartDiscard opens a block that is decoded only to keep the HPACK
// state (a refused or ignored stream's): its fields are dropped.
func (d *RequestDecoder) StartDiscard() { d.start() }

func (d *RequestDecoder) start() {
	*d = RequestDecoder{
		MaxBytes: d.MaxBytes, MaxFields: d.MaxFields, Trailers: d.Trailers,
		host: d.host[:0], cookie: d.cookie[:0], declared: -1,
	}
	d.Trailers.Reset()
}

// Err returns the block's first malformation, or nil.
func (d *RequestDecoder) Err() error { return d.bad }

// TooLarge reports whether the block passed MaxBytes or MaxFields; the
// fields past the limit were dropped.
func (d *RequestDecoder) TooLarge() bool { return d.tooLarge }

// Declared returns the request's content-length, -1 when it has none.
func (d *RequestDecoder) Declared() int64 { return d.declared }

func (d *RequestDecoder) malformed(msg string) {
	if d.bad == nil {
		d.bad = errors.New(msg)
	}
}

// Field receives each decoded field of the block.
func (d *RequestDecoder) Field(f hpack.HeaderField) {
	if d.req == nil && !d.trailer || d.bad != nil || d.tooLarge {
		return
	}
	d.size += len(f.Name) + len(f.Value) + 32
	d.fields++
	if d.size > d.MaxBytes || d.fields > d.MaxFields {
		d.tooLarge = true
		return
	}
	if d.trailer {
		d.trailerField(f)
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		d.pseudo(f)
		return
	}
	d.field(f)
}

func (d *RequestDecoder) pseudo(f hpack.HeaderField) {
	if d.regular {
		d.malformed("pseudo-header after a regular field")
		return
	}
	req := d.req
	var seen *bool
	switch f.Name {
	case ":method":
		seen = &d.method
		if !httpsyntax.IsToken(f.Value) {
			d.malformed("invalid :method")
		}
		req.Method = append(req.Method[:0], f.Value...)
	case ":scheme":
		seen = &d.scheme
		if !validSchemeName(f.Value) {
			d.malformed("invalid :scheme")
		}
	case ":path":
		seen = &d.path
		if !validPath(f.Value) {
			d.malformed("invalid :path")
		}
		req.Target = append(req.Target[:0], f.Value...)
	case ":authority":
		seen = &d.authority
		if !validAuthority(f.Value) {
			d.malformed("invalid :authority")
		}
		req.Host = append(req.Host[:0], f.Value...)
	default:
		d.malformed("unknown pseudo-header " + f.Name)
		return
	}
	if *seen {
		d.malformed("duplicate " + f.Name)
	}
	*seen = true
}

func (d *RequestDecoder) field(f hpack.HeaderField) {
	req := d.req
	if !d.regular {
		d.regular = true
		d.addHost()
	}
	if !ValidName(f.Name) || !ValidValue(f.Value) {
		d.malformed("invalid field " + f.Name)
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		d.malformed("connection-specific field " + f.Name)
	case "te":
		if !strings.EqualFold(f.Value, "trailers") {
			d.malformed("te other than trailers")
		}
	case "content-length":
		n, ok := parseLength(f.Value)
		if !ok || d.declared >= 0 && n != d.declared {
			d.malformed("invalid content-length")
		}
		d.declared = n
	case "cookie":
		// Crumbs join into one field for HTTP/1.1 (RFC 9113 §8.2.3).
		if len(d.cookie) > 0 {
			d.cookie = append(d.cookie, "; "...)
		}
		d.cookie = append(d.cookie, f.Value...)
	case "host":
		switch {
		case d.authority:
			if f.Value != string(req.Host) {
				d.malformed("host differs from :authority")
			}
		case len(d.host) > 0:
			d.malformed("duplicate host")
		default:
			d.host = append(d.host, f.Value...)
			if !validAuthority(f.Value) {
				d.malformed("invalid host")
			}
			req.Host = append(req.Host[:0], f.Value...)
			// Host first, as an :authority would have put it, whatever
			// fields the client sent before it.
			req.Header.Add("host", f.Value)
			req.Header.MoveToFront(req.Header.Len() - 1)
		}
	case "expect":
		if strings.EqualFold(f.Value, "100-continue") {
			req.Expect100 = true
		}
		req.Header.Add(f.Name, f.Value)
	default:
		req.Header.Add(f.Name, f.Value)
	}
}

// addHost puts the authority first among the fields, as Host.
func (d *RequestDecoder) addHost() {
	if d.authority && !d.hostAdded {
		d.hostAdded = true
		d.req.Header.AddBytes([]byte("host"), d.req.Host)
	}
}

func (d *RequestDecoder) trailerField(f hpack.HeaderField) {
	if strings.HasPrefix(f.Name, ":") {
		d.malformed("pseudo-header in trailers")
		return
	}
	if !ValidName(f.Name) || !ValidValue(f.Value) {
		d.malformed("invalid trailer field " + f.Name)
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
		"content-length", "host", "trailer":
		d.malformed("field " + f.Name + " not allowed in trailers")
		return
	}
	d.Trailers.Add(f.Name, f.Value)
}

// FinishRequest completes the request head once its block is decoded:
// Host first among the fields, cookies joined, the framing (Minor 1,
// keep-alive, ContentLength or Chunked for a body of unknown length). It
// returns a status to answer at once (0: serve the request): 431 for a
// block over the limits, 501 for CONNECT, 400 without an authority; or,
// for a malformed request, an error: the stream is to be reset with
// PROTOCOL_ERROR.
func (d *RequestDecoder) FinishRequest() (int, error) {
	if d.bad != nil {
		return 0, d.bad
	}
	if d.tooLarge {
		return 431, nil
	}
	req := d.req
	d.addHost()
	if !d.method {
		return 0, errors.New("no :method")
	}
	if string(req.Method) == "CONNECT" {
		// No tunnels over HTTP/2 (nor SETTINGS_ENABLE_CONNECT_PROTOCOL).
		return 501, nil
	}
	if !d.scheme || !d.path {
		return 0, errors.New("no :scheme or :path")
	}
	if len(req.Target) == 1 && req.Target[0] == '*' && string(req.Method) != "OPTIONS" {
		return 0, errors.New(":path * outside OPTIONS")
	}
	if !d.authority && len(d.host) == 0 {
		return 400, nil // an HTTP/1.1 upstream needs a Host
	}
	if len(d.cookie) > 0 {
		req.Header.AddBytes([]byte("cookie"), d.cookie)
	}
	if d.endStream && d.declared > 0 {
		return 0, errors.New("content-length without a body")
	}
	req.Minor, req.KeepAlive, req.Upgrade = 1, true, nil
	switch {
	case d.endStream:
		req.ContentLength, req.Chunked = 0, false
	case d.declared >= 0:
		req.ContentLength, req.Chunked = d.declared, false
	default:
		req.ContentLength, req.Chunked = -1, true
	}
	return 0, nil
}

// ValidName reports whether s is a lowercase token, as an HTTP/2 field
// name must be (RFC 9113 §8.2.1).
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !httpsyntax.IsTokenChar(c) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// ValidValue reports whether s is a field value an HTTP/1.1 recipient
// reads as this proxy does: no control bytes but HTAB, no edge whitespace.
func ValidValue(s string) bool {
	if s == "" {
		return true
	}
	if isSpaceOrTab(s[0]) || isSpaceOrTab(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isSpaceOrTab(c byte) bool { return c == ' ' || c == '\t' }

// validPath accepts an origin-form path (or "*"): visible ASCII only, so
// that the request line it becomes upstream reads back the same.
func validPath(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

func validSchemeName(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validAuthority accepts host[:port] with the characters of a reg-name,
// an IP literal or a port; no userinfo.
func validAuthority(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:[]%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: digits only, at most 18.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
