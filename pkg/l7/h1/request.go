package h1

import "bytes"

// Request is a parsed request head.
//
// All byte slices point into storage the Request owns: the head is copied
// once out of the Reader's buffer into an arena that the Header reuses, so
// they stay valid until the Request is read into again or reset, even while
// the body is read. Their capacity is clipped, so appending to one copies.
type Request struct {
	// Method is the request method, a token, compared case-sensitively.
	Method []byte
	// Target is the request target: origin-form ("/path?q"), absolute-form
	// ("http://host/path"), authority-form ("host:port", CONNECT only) or
	// "*" (OPTIONS only).
	Target []byte
	// Minor is the minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
	Minor int
	// Header holds every field line in order, framing fields included.
	Header Header
	// Host is the Host field's value (required, exactly once, in
	// HTTP/1.1; nil when absent from an HTTP/1.0 request). See Authority.
	Host []byte
	// ContentLength is the Content-Length, or -1 when absent (always -1
	// for a chunked request).
	ContentLength int64
	// Chunked says the body uses the chunked transfer coding.
	Chunked bool
	// KeepAlive says the client wants the connection kept open, from the
	// version and the Connection options.
	KeepAlive bool
	// Upgrade is the Upgrade field's value when the Connection field lists
	// "upgrade" in an HTTP/1.1 request, else nil.
	Upgrade []byte
	// Expect100 says an HTTP/1.1 client sent "Expect: 100-continue" and
	// may wait for a 100 response before sending the body.
	Expect100 bool
	// BodyMode is how the body is framed: NoBody, Length or Chunked.
	BodyMode BodyMode
}

// Reset clears the request, keeping the Header's capacity.
func (req *Request) Reset() {
	h := req.Header
	h.Reset()
	*req = Request{Header: h, ContentLength: -1}
}

// Authority returns the authority the request is addressed to: the target
// of a CONNECT, the authority of an absolute-form target (which RFC 9112
// §3.2.2 says overrides Host), or else the Host field. A proxy should route
// and rewrite Host by this, never by Host alone.
func (req *Request) Authority() []byte {
	if string(req.Method) == "CONNECT" {
		return req.Target
	}
	if authority, ok := absoluteAuthority(req.Target); ok {
		return authority
	}
	return req.Host
}

// ReadRequest reads the next request head into req.
//
// It returns io.EOF, unwrapped, when the connection ends cleanly before a
// new request begins (empty lines aside), io.ErrUnexpectedEOF when it ends
// inside a head, and an *Error when the head is malformed or over lim: its
// Status is the code to answer with before closing. It returns
// ErrBodyUnread if the previous request's body has not been read to its end.
func (r *Reader) ReadRequest(req *Request, lim Limits) error {
	head, err := r.startHead(lim)
	if err != nil {
		return err
	}
	if err := req.parse(head, r.lineEnds); err != nil {
		return err
	}
	if req.BodyMode != NoBody {
		r.state = bodyPending
	}
	return nil
}

// startHead checks that a head may be read, sets the limits, and reads it.
func (r *Reader) startHead(lim Limits) ([]byte, error) {
	if r.state != bodyIdle {
		return nil, ErrBodyUnread
	}
	r.lim = lim.withDefaults()
	r.shrink()
	skipped, err := r.skipEmptyLines(r.lim.MaxHeaderBytes)
	if err != nil {
		return nil, err
	}
	return r.readBlock(r.lim.MaxHeaderBytes-skipped, r.lim.MaxHeaders, true, true)
}

// splitStartLine copies head into h's arena and returns the arena and the
// start line without its line ending. lineEnds are the head's line ends
// from readBlock.
func splitStartLine(h *Header, head []byte, lineEnds []uint32) (buf, line []byte) {
	buf = h.setArena(head)
	end := int(lineEnds[0])
	if end > 0 && buf[end-1] == '\r' {
		end--
	}
	return buf, buf[:end]
}

func (req *Request) parse(head []byte, lineEnds []uint32) error {
	req.Reset()
	buf, line := splitStartLine(&req.Header, head, lineEnds)
	if err := req.parseRequestLine(line); err != nil {
		return err
	}
	if err := parseFields(buf, int(lineEnds[0])+1, lineEnds[1:], &req.Header, true); err != nil {
		return err
	}
	var f framing
	if err := f.scan(&req.Header); err != nil {
		return err
	}
	return req.applyFraming(&f)
}

// parseRequestLine parses method SP request-target SP HTTP-version, with
// exactly one space between the parts (RFC 9112 §3).
func (req *Request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return malformed("request line without spaces: %q", quote(line))
	}
	method, rest := line[:sp1], line[sp1+1:]
	if !isToken(method) {
		return malformed("invalid method in request line: %q", quote(line))
	}
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		return malformed("request line without HTTP version: %q", quote(line))
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if len(target) == 0 {
		return malformed("empty request target: %q", quote(line))
	}
	if i := invalidTargetByte(target); i >= 0 {
		return malformed("request target with %s: %q", badByteMsg(target[i]), quote(line))
	}
	minor, err := parseRequestVersion(version)
	if err != nil {
		return err
	}
	if err := checkTarget(method, target); err != nil {
		return err
	}
	req.Method, req.Target, req.Minor = clip(method), clip(target), minor
	return nil
}

// parseRequestVersion accepts exactly HTTP/1.0 and HTTP/1.1. Another
// well-formed version is unsupported (505); anything else is malformed.
func parseRequestVersion(v []byte) (int, error) {
	major, minor, ok := parseVersion(v)
	switch {
	case !ok:
		return 0, malformed("invalid HTTP version: %q", quote(v))
	case major != 1 || minor > 1:
		return 0, unsupportedVersion("HTTP version %q", v)
	}
	return minor, nil
}

// parseVersion parses "HTTP/" DIGIT "." DIGIT, case-sensitively as RFC 9112
// §2.3 requires.
func parseVersion(v []byte) (major, minor int, ok bool) {
	if len(v) != len("HTTP/1.1") || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// checkTarget enforces the form of the request target that the method
// allows (RFC 9112 §3.2).
func checkTarget(method, target []byte) error {
	switch {
	case string(method) == "CONNECT":
		if !validAuthorityForm(target) {
			return malformed("CONNECT target is not host:port: %q", quote(target))
		}
	case target[0] == '/':
		// origin-form
	case len(target) == 1 && target[0] == '*':
		if string(method) != "OPTIONS" {
			return malformed("asterisk target with method %q", quote(method))
		}
	default:
		if _, ok := absoluteAuthority(target); !ok {
			return malformed("invalid request target: %q", quote(target))
		}
	}
	return nil
}

// validAuthorityForm reports whether target is host ":" port with a
// non-empty host and a decimal port.
func validAuthorityForm(target []byte) bool {
	colon := bytes.LastIndexByte(target, ':')
	if colon <= 0 || colon == len(target)-1 {
		return false
	}
	for _, c := range target[colon+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return validHost(target[:colon])
}

// absoluteAuthority returns the authority of an absolute-form target,
// scheme "://" authority [path], and whether target has that form. An
// authority with userinfo ("user@host") is refused, as RFC 9110 §4.2.4 asks:
// it exists to make a URL look like it points somewhere it does not.
func absoluteAuthority(target []byte) ([]byte, bool) {
	sep := bytes.Index(target, []byte("://"))
	if sep <= 0 || !validScheme(target[:sep]) {
		return nil, false
	}
	rest := target[sep+3:]
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if len(authority) == 0 || !validHost(authority) {
		return nil, false
	}
	return clip(authority), true
}

// validScheme reports whether s is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s []byte) bool {
	for i, c := range s {
		alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alpha && (i == 0 || !isDigit(c) && c != '+' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// validHost reports whether b is made only of the bytes of uri-host and
// port; '@' and '/' are not among them.
func validHost(b []byte) bool { return invalidByte(b, classHost) < 0 }

// applyFraming decides the request's framing per RFC 9112 §6 and rejects
// every combination that two servers could read differently.
func (req *Request) applyFraming(f *framing) error {
	switch {
	case f.hosts > 1:
		return malformed("%d Host fields", f.hosts)
	case f.hosts == 0 && req.Minor == 1:
		return malformed("HTTP/1.1 request without Host")
	case f.hosts == 1 && !validHost(f.host):
		return malformed("invalid Host: %q", quote(f.host))
	case f.transferCoding && f.contentLength >= 0:
		return malformed("both Transfer-Encoding and Content-Length")
	case f.transferCoding && req.Minor == 0:
		return malformed("Transfer-Encoding in an HTTP/1.0 request")
	case f.unsupported != nil:
		return unsupportedCoding("transfer coding %q", quote(f.unsupported))
	}
	req.Host = f.host
	req.ContentLength = f.contentLength
	req.Chunked = f.isChunked()
	req.KeepAlive = f.keepAlive(req.Minor)
	if req.Minor == 1 {
		// RFC 9110 §7.8 and §10.1.1: an HTTP/1.0 request's Upgrade and
		// Expect must be ignored.
		if f.connUpgrade {
			req.Upgrade = f.upgrade
		}
		req.Expect100 = f.expect100
	}
	switch {
	case req.Chunked:
		req.BodyMode = Chunked
	case req.ContentLength > 0:
		req.BodyMode = Length
	}
	return nil
}
