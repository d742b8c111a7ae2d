package l7

import (
	"errors"
	"strings"

	"github.com/weir-lb/weir/internal/httpsyntax"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Decoding a request's header block (RFC 9113 §8.2, §8.3) straight into
// the pipeline's h1.Request. Everything an HTTP/1.1 upstream could read
// differently from the proxy is refused here, before a byte goes out:
// uppercase or invalid names, connection-specific fields, values with
// CR, LF, NUL or edge whitespace, paths with spaces, an authority that
// disagrees with Host, duplicate or invalid Content-Length.

// headerBlock is the state of the header block being decoded.
type headerBlock struct {
	// st is the stream a request block belongs to; nil while a block is
	// decoded only to keep the HPACK state (a refused or ignored stream).
	st *h2Stream
	id uint32
	// trailer says the block is a request's trailer section, decoded into
	// trailers until the stream is known to be still there.
	trailer   bool
	trailers  h1.Header
	endStream bool
	// refuse is the RST_STREAM code to answer once the block is decoded.
	refuse http2.ErrCode
	// bad is the first malformation; tooLarge says a limit was passed.
	bad      error
	tooLarge bool

	size, fields, raw   int
	maxBytes, maxFields int

	method, scheme, path, authority, regular, hostAdded bool
	host                                                []byte
	declared                                            int64
	cookie                                              []byte
}

// start resets the block for a new HEADERS frame.
func (hb *headerBlock) start(id uint32) {
	*hb = headerBlock{
		id: id, maxBytes: hb.maxBytes, maxFields: hb.maxFields,
		trailers: hb.trailers, host: hb.host[:0], cookie: hb.cookie[:0], declared: -1,
	}
	hb.trailers.Reset()
}

func (hb *headerBlock) malformed(msg string) {
	if hb.bad == nil {
		hb.bad = errors.New(msg)
	}
}

// emit receives each decoded field from the HPACK decoder.
func (hc *h2Conn) emit(f hpack.HeaderField) {
	hb := &hc.hb
	if hb.st == nil && !hb.trailer || hb.bad != nil || hb.tooLarge {
		return
	}
	hb.size += len(f.Name) + len(f.Value) + 32
	hb.fields++
	if hb.size > hb.maxBytes || hb.fields > hb.maxFields {
		hb.tooLarge = true
		return
	}
	if hb.trailer {
		hb.trailerField(f)
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		hb.pseudo(f)
		return
	}
	hb.field(f)
}

func (hb *headerBlock) pseudo(f hpack.HeaderField) {
	if hb.regular {
		hb.malformed("pseudo-header after a regular field")
		return
	}
	req := &hb.st.px.req
	var seen *bool
	switch f.Name {
	case ":method":
		seen = &hb.method
		if !httpsyntax.IsToken(f.Value) {
			hb.malformed("invalid :method")
		}
		req.Method = append(req.Method[:0], f.Value...)
	case ":scheme":
		seen = &hb.scheme
		if !validSchemeName(f.Value) {
			hb.malformed("invalid :scheme")
		}
	case ":path":
		seen = &hb.path
		if !validPath(f.Value) {
			hb.malformed("invalid :path")
		}
		req.Target = append(req.Target[:0], f.Value...)
	case ":authority":
		seen = &hb.authority
		if !validAuthority(f.Value) {
			hb.malformed("invalid :authority")
		}
		req.Host = append(req.Host[:0], f.Value...)
	default:
		hb.malformed("unknown pseudo-header " + f.Name)
		return
	}
	if *seen {
		hb.malformed("duplicate " + f.Name)
	}
	*seen = true
}

func (hb *headerBlock) field(f hpack.HeaderField) {
	req := &hb.st.px.req
	if !hb.regular {
		hb.regular = true
		hb.addHost()
	}
	if !validH2Name(f.Name) || !validH2Value(f.Value) {
		hb.malformed("invalid field " + f.Name)
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		hb.malformed("connection-specific field " + f.Name)
	case "te":
		if !strings.EqualFold(f.Value, "trailers") {
			hb.malformed("te other than trailers")
		}
	case "content-length":
		n, ok := parseLength(f.Value)
		if !ok || hb.declared >= 0 && n != hb.declared {
			hb.malformed("invalid content-length")
		}
		hb.declared = n
	case "cookie":
		// Crumbs join into one field for HTTP/1.1 (RFC 9113 §8.2.3).
		if len(hb.cookie) > 0 {
			hb.cookie = append(hb.cookie, "; "...)
		}
		hb.cookie = append(hb.cookie, f.Value...)
	case "host":
		switch {
		case hb.authority:
			if f.Value != string(req.Host) {
				hb.malformed("host differs from :authority")
			}
		case len(hb.host) > 0:
			hb.malformed("duplicate host")
		default:
			hb.host = append(hb.host, f.Value...)
			if !validAuthority(f.Value) {
				hb.malformed("invalid host")
			}
			req.Host = append(req.Host[:0], f.Value...)
			req.Header.Add("host", f.Value)
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
func (hb *headerBlock) addHost() {
	if hb.authority && !hb.hostAdded {
		hb.hostAdded = true
		req := &hb.st.px.req
		req.Header.AddBytes([]byte("host"), req.Host)
	}
}

func (hb *headerBlock) trailerField(f hpack.HeaderField) {
	if strings.HasPrefix(f.Name, ":") {
		hb.malformed("pseudo-header in trailers")
		return
	}
	if !validH2Name(f.Name) || !validH2Value(f.Value) {
		hb.malformed("invalid trailer field " + f.Name)
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
		"content-length", "host", "trailer":
		hb.malformed("field " + f.Name + " not allowed in trailers")
		return
	}
	hb.trailers.Add(f.Name, f.Value)
}

// finishRequest completes the request head once its block is decoded. It
// returns a status to answer at once (0: serve the request) or, for a
// malformed request, an error: the stream is then reset.
func (hb *headerBlock) finishRequest() (int, error) {
	if hb.bad != nil {
		return 0, hb.bad
	}
	if hb.tooLarge {
		return 431, nil
	}
	req := &hb.st.px.req
	hb.addHost()
	if !hb.method {
		return 0, errors.New("no :method")
	}
	if string(req.Method) == "CONNECT" {
		// No tunnels over HTTP/2 (nor SETTINGS_ENABLE_CONNECT_PROTOCOL).
		return 501, nil
	}
	if !hb.scheme || !hb.path {
		return 0, errors.New("no :scheme or :path")
	}
	if len(req.Target) == 1 && req.Target[0] == '*' && string(req.Method) != "OPTIONS" {
		return 0, errors.New(":path * outside OPTIONS")
	}
	if !hb.authority && len(hb.host) == 0 {
		return 400, nil // an HTTP/1.1 upstream needs a Host
	}
	if len(hb.cookie) > 0 {
		req.Header.AddBytes([]byte("cookie"), hb.cookie)
	}
	if hb.endStream && hb.declared > 0 {
		return 0, errors.New("content-length without a body")
	}
	req.Minor, req.KeepAlive, req.Upgrade = 1, true, nil
	switch {
	case hb.endStream:
		req.ContentLength, req.Chunked = 0, false
	case hb.declared >= 0:
		req.ContentLength, req.Chunked = hb.declared, false
	default:
		req.ContentLength, req.Chunked = -1, true
	}
	return 0, nil
}

// validH2Name reports whether s is a lowercase token (RFC 9113 §8.2.1).
func validH2Name(s string) bool {
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

// validH2Value reports whether s is a field value an HTTP/1.1 recipient
// reads as this proxy does: no control bytes but HTAB, no edge whitespace.
func validH2Value(s string) bool {
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
