package h1

// Response is a parsed response head. Like Request, its byte slices point
// into storage it owns and stay valid until it is read into again or reset.
type Response struct {
	// Minor is the minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1
	// (a later HTTP/1.x is read as 1.1, as RFC 9110 §2.5 suggests).
	Minor int
	// Status is the status code, 100 to 999.
	Status int
	// Reason is the reason phrase, possibly empty.
	Reason []byte
	// Header holds every field line in order, framing fields included.
	Header Header
	// ContentLength is the Content-Length, or -1 when absent or when
	// the response is chunked.
	ContentLength int64
	// Chunked says the response carries "Transfer-Encoding: chunked". It
	// frames the body unless BodyMode is NoBody (a response to HEAD, for
	// instance, announces the framing a GET would have had).
	Chunked bool
	// KeepAlive says the connection may carry another request after this
	// response's body.
	KeepAlive bool
	// Upgrade is the Upgrade field's value of a 101 response whose
	// Connection field lists "upgrade", else nil. After such a response
	// the connection carries the new protocol: read it with Reader.Read.
	Upgrade []byte
	// BodyMode is how the body is framed, given the request method
	// (RFC 9112 §6.3). A 2xx answer to CONNECT has NoBody: the
	// connection becomes a tunnel.
	BodyMode BodyMode
}

// Reset clears the response, keeping the Header's capacity.
func (resp *Response) Reset() {
	h := resp.Header
	h.Reset()
	*resp = Response{Header: h, ContentLength: -1}
}

// ReadResponse reads the next response head into resp. reqMethod is the
// method of the request it answers, which decides whether it has a body.
//
// Interim (1xx) responses are returned like any other; the caller loops
// until a final one, and 101 is final for a request that asked to upgrade.
// Errors are as for ReadRequest; a proxy answers its client 502 for any of
// them.
func (r *Reader) ReadResponse(resp *Response, reqMethod []byte, lim Limits) error {
	head, err := r.startHead(lim)
	if err != nil {
		return err
	}
	if err := resp.parse(head, r.lineEnds, reqMethod); err != nil {
		return err
	}
	if resp.BodyMode != NoBody {
		r.state = bodyPending
	}
	return nil
}

func (resp *Response) parse(head []byte, lineEnds []uint32, reqMethod []byte) error {
	resp.Reset()
	buf, line := splitStartLine(&resp.Header, head, lineEnds)
	if err := resp.parseStatusLine(line); err != nil {
		return err
	}
	if err := parseFields(buf, int(lineEnds[0])+1, lineEnds[1:], &resp.Header, true); err != nil {
		return err
	}
	var f framing
	if err := f.scan(&resp.Header); err != nil {
		return err
	}
	return resp.applyFraming(&f, reqMethod)
}

// parseStatusLine parses HTTP-version SP 3DIGIT SP reason-phrase. The SP
// before an empty reason may be missing: servers omit it, and its absence
// cannot change how the message is framed.
func (resp *Response) parseStatusLine(line []byte) error {
	const versionLen = len("HTTP/1.1")
	if len(line) < versionLen {
		return malformed("invalid status line: %q", quote(line))
	}
	major, minor, ok := parseVersion(line[:versionLen])
	switch {
	case !ok:
		return malformed("invalid status line: %q", quote(line))
	case major != 1:
		return unsupportedVersion("HTTP version %q", line[:versionLen])
	}
	rest := line[versionLen:]
	if len(rest) < 4 || rest[0] != ' ' || !isStatus(rest[1:4]) {
		return malformed("invalid status code in status line: %q", quote(line))
	}
	reason := rest[4:]
	if len(reason) > 0 {
		if reason[0] != ' ' {
			return malformed("no space after status code: %q", quote(line))
		}
		reason = reason[1:]
	}
	if i := invalidValueByte(reason); i >= 0 {
		return malformed("reason phrase with %s: %q", badByteMsg(reason[i]), quote(line))
	}
	resp.Minor = min(minor, 1)
	resp.Status = int(rest[1]-'0')*100 + int(rest[2]-'0')*10 + int(rest[3]-'0')
	resp.Reason = clip(reason)
	return nil
}

// isStatus reports whether b is three digits making 100 to 999.
func isStatus(b []byte) bool {
	return '1' <= b[0] && b[0] <= '9' && isDigit(b[1]) && isDigit(b[2])
}

// applyFraming decides the body's framing per RFC 9112 §6.3.
func (resp *Response) applyFraming(f *framing, reqMethod []byte) error {
	noBody := string(reqMethod) == "HEAD" || resp.Status < 200 || resp.Status == 204 || resp.Status == 304 ||
		string(reqMethod) == "CONNECT" && resp.Status < 300
	if f.transferCoding && f.unsupported != nil && !noBody {
		return unsupportedCoding("transfer coding %q in response", quote(f.unsupported))
	}
	resp.ContentLength = f.contentLength
	resp.Chunked = f.isChunked()
	resp.KeepAlive = f.keepAlive(resp.Minor)
	if resp.Status == 101 && f.connUpgrade {
		resp.Upgrade = f.upgrade
	}
	if f.transferCoding {
		// Content-Length next to Transfer-Encoding, or Transfer-Encoding
		// from an HTTP/1.0 server, means the sender's framing is faulty:
		// RFC 9112 §6.1 and §6.3 say read the chunked body, then close.
		if f.contentLength >= 0 || resp.Minor == 0 {
			resp.KeepAlive = false
		}
		resp.ContentLength = -1
	}
	switch {
	case noBody:
		resp.BodyMode = NoBody
	case resp.Chunked:
		resp.BodyMode = Chunked
	case resp.ContentLength > 0:
		resp.BodyMode = Length
	case resp.ContentLength < 0:
		resp.BodyMode = UntilClose
		resp.KeepAlive = false
	}
	return nil
}
