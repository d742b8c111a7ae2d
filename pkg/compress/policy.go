package compress

import (
	"bytes"
	"io"
	"strings"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// DefaultMinSize is the smallest body compressed when Policy.MinSize is
// 0: below about a kilobyte the encoding's framing eats most of the gain.
const DefaultMinSize = 1024

// DefaultEncodings returns the encodings of a Policy that names none, in
// order of preference: zstd, br, gzip.
func DefaultEncodings() []Encoding { return []Encoding{Zstd, Brotli, Gzip} }

// DefaultTypes returns the content types compressed when Policy.Types is
// empty: text and the structured text formats. Images, audio, video,
// fonts in WOFF2 and archives are compressed already.
func DefaultTypes() []string {
	return []string{
		"text/*",
		"application/json", "application/*+json", "application/javascript", "application/x-javascript",
		"application/ecmascript", "application/xml", "application/*+xml", "application/x-ndjson",
		"application/graphql-response+json", "application/manifest+json", "application/wasm",
		"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
		"font/ttf", "font/otf", "application/vnd.ms-fontobject",
	}
}

// Policy compresses response bodies as an l7.ResponseBodyFilter: a Proxy
// that embeds one, or calls its ResponseBodyFilter, has its responses
// compressed when the client accepts an encoding the Policy has.
//
// A response is left as it is when it is already Content-Encoded, is a
// 206 or has a Content-Range, has no body, carries Cache-Control:
// no-transform (or its request does), answers an upgrade request, has a
// content type not in Types, or a Content-Length below MinSize. A body of
// unknown length is compressed.
//
// A Policy is read, never changed, once in use; the zero Policy uses every
// default.
type Policy struct {
	// Encodings are those offered, in order of preference when the client
	// weighs several alike; empty means DefaultEncodings.
	Encodings []Encoding
	// MinSize is the smallest Content-Length compressed; 0 means
	// DefaultMinSize, a negative value no minimum.
	MinSize int64
	// Types are the media types compressed, "type/subtype" or "type/*",
	// "application/*+json" for a structured-syntax suffix; compared
	// ignoring case and parameters. Empty means DefaultTypes.
	Types []string
}

var _ l7.ResponseBodyFilter = (*Policy)(nil)

// ResponseBodyFilter implements l7.ResponseBodyFilter: it returns a pooled
// encoder writing to dst when the response should be compressed, having
// set Content-Encoding, removed Content-Length and Accept-Ranges, added
// Accept-Encoding to Vary and weakened a strong ETag (the compressed bytes
// are another representation); nil otherwise.
func (p *Policy) ResponseBodyFilter(s *l7.Session, resp *h1.Response, dst io.Writer) l7.BodyEncoder {
	e := p.Choose(s.Req, resp)
	if e == 0 {
		return nil
	}
	rewriteHead(&resp.Header, e)
	return getEncoder(e, dst)
}

// Choose returns the encoding for resp, the response to req, or 0 when it
// is to be sent as it is. It changes neither.
func (p *Policy) Choose(req *h1.Request, resp *h1.Response) Encoding {
	if !p.compressible(req, resp) {
		return 0
	}
	var fields [4][]byte // Accept-Encoding is rarely split over more
	values := fields[:0]
	for v := range req.Header.Values("Accept-Encoding") {
		values = append(values, v)
	}
	prefs := p.Encodings
	if len(prefs) == 0 {
		prefs = defaultEncodings
	}
	return negotiate(prefs, values)
}

var defaultEncodings = DefaultEncodings()

// compressible applies every skip condition but the client's choice.
func (p *Policy) compressible(req *h1.Request, resp *h1.Response) bool {
	st := resp.Status
	if st < 200 || st == 204 || st == 206 || st == 304 || req.Upgrade != nil ||
		string(req.Method) == "HEAD" || string(req.Method) == "CONNECT" {
		return false
	}
	h := &resp.Header
	if ce, ok := h.Get("Content-Encoding"); ok && !asciiEqualFold(bytes.TrimSpace(ce), "identity") {
		return false
	}
	if h.Has("Content-Range") || noTransform(h) || noTransform(&req.Header) {
		return false
	}
	if n := resp.ContentLength; n == 0 || n > 0 && n < p.minSize() {
		return false
	}
	ct, ok := h.Get("Content-Type")
	return ok && p.typeListed(ct)
}

func (p *Policy) minSize() int64 {
	switch {
	case p.MinSize == 0:
		return DefaultMinSize
	case p.MinSize < 0:
		return 0
	}
	return p.MinSize
}

func noTransform(h *h1.Header) bool {
	for v := range h.Values("Cache-Control") {
		if hasToken(v, "no-transform") {
			return true
		}
	}
	return false
}

// typeListed reports whether the media type of the Content-Type value ct
// is one of p's Types.
func (p *Policy) typeListed(ct []byte) bool {
	mt, _, _ := bytes.Cut(ct, []byte(";"))
	mt = bytes.TrimSpace(mt)
	types := p.Types
	if len(types) == 0 {
		types = defaultTypes
	}
	for _, t := range types {
		if typeMatches(mt, t) {
			return true
		}
	}
	return false
}

var defaultTypes = DefaultTypes()

// typeMatches matches the media type mt against pattern: "type/subtype",
// "type/*", or "type/*+suffix".
func typeMatches(mt []byte, pattern string) bool {
	ptype, psub, ok := strings.Cut(pattern, "/")
	mtype, msub, ok2 := bytes.Cut(mt, []byte("/"))
	if !ok || !ok2 || !bytes.EqualFold(mtype, []byte(ptype)) {
		return false
	}
	switch {
	case psub == "*":
		return true
	case strings.HasPrefix(psub, "*+"):
		suffix := psub[1:]
		return len(msub) > len(suffix) && bytes.EqualFold(msub[len(msub)-len(suffix):], []byte(suffix))
	}
	return bytes.EqualFold(msub, []byte(psub))
}

// rewriteHead makes the response head describe the body encoded with e.
func rewriteHead(h *h1.Header, e Encoding) {
	h.Set("Content-Encoding", e.String())
	h.Del("Content-Length")
	// A range of the encoded body is not the range the origin would
	// serve; offering ranges would invite requests for the wrong bytes.
	h.Del("Accept-Ranges")
	varyAcceptEncoding(h)
	if etag, ok := h.Get("ETag"); ok && len(etag) > 0 && etag[0] == '"' {
		// A strong validator names exact bytes; the encoded ones differ.
		var buf [128]byte
		h.SetValue("ETag", append(append(buf[:0], "W/"...), etag...))
	}
}

// varyAcceptEncoding adds Accept-Encoding to Vary unless it, or "*", is
// there already.
func varyAcceptEncoding(h *h1.Header) {
	for v := range h.Values("Vary") {
		if hasToken(v, "accept-encoding") || hasToken(v, "*") {
			return
		}
	}
	h.Add("Vary", "Accept-Encoding")
}
