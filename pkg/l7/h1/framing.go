package h1

import "math"

// fieldKind names the fields that decide framing and connection handling.
type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldHost
	fieldExpect
	fieldUpgrade
	fieldConnection
	fieldContentLength
	fieldTransferEncoding
)

// classify returns the kind of a field name. It switches on the length
// first, so most fields cost one comparison of integers.
func classify(name []byte) fieldKind {
	switch len(name) {
	case len("host"):
		if equalFold(name, "host") {
			return fieldHost
		}
	case len("expect"):
		if equalFold(name, "expect") {
			return fieldExpect
		}
	case len("upgrade"):
		if equalFold(name, "upgrade") {
			return fieldUpgrade
		}
	case len("connection"):
		if equalFold(name, "connection") {
			return fieldConnection
		}
	case len("content-length"):
		if equalFold(name, "content-length") {
			return fieldContentLength
		}
	case len("transfer-encoding"):
		if equalFold(name, "transfer-encoding") {
			return fieldTransferEncoding
		}
	}
	return fieldOther
}

// framing collects what the framing and connection fields of a head say,
// before the rules for requests or responses turn it into a decision.
type framing struct {
	contentLength  int64  // -1 when absent
	transferCoding bool   // a Transfer-Encoding field is present
	chunkedSeen    bool   // "chunked" is among the codings
	unsupported    []byte // the first coding other than chunked, if any
	connClose      bool
	connKeepAlive  bool
	connUpgrade    bool
	hosts          int
	host           []byte
	upgrade        []byte // the first Upgrade field
	expect100      bool
}

// scan reads the framing fields of h. It rejects what is malformed in
// itself (a bad or conflicting Content-Length, a bad Transfer-Encoding
// list); combinations are for the caller to judge.
func (f *framing) scan(h *Header) error {
	*f = framing{contentLength: -1}
	for i := range h.fields {
		name, value := h.At(i)
		var err error
		switch classify(name) {
		case fieldContentLength:
			err = f.addContentLength(value)
		case fieldTransferEncoding:
			err = f.addTransferEncoding(value)
		case fieldConnection:
			f.addConnection(value)
		case fieldHost:
			f.hosts++
			f.host = value
		case fieldUpgrade:
			if f.upgrade == nil {
				f.upgrade = value
			}
		case fieldExpect:
			f.expect100 = f.expect100 || listContainsFold(value, "100-continue")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addContentLength folds one Content-Length field into f. RFC 9110 §8.6
// lets a recipient accept repeated values when they are all the same
// length; anything else is a smuggling attempt or a broken sender.
func (f *framing) addContentLength(value []byte) error {
	list := value
	for {
		elem, rest, more := cutElement(list)
		n, ok := parseContentLength(elem)
		if !ok {
			return malformed("invalid Content-Length: %q", quote(value))
		}
		if f.contentLength >= 0 && n != f.contentLength {
			return malformed("conflicting Content-Length values: %d and %q", f.contentLength, quote(value))
		}
		f.contentLength = n
		if !more {
			return nil
		}
		list = rest
	}
}

// parseContentLength parses 1*DIGIT without sign or overflow.
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// addTransferEncoding folds one Transfer-Encoding field into f. Codings
// other than chunked are noted, not rejected here, so that the caller can
// answer 501 where the syntax was fine but the coding is one we do not
// decode. "chunked" twice, chunked with parameters, and anything that is
// not a coding at all are malformed.
func (f *framing) addTransferEncoding(value []byte) error {
	f.transferCoding = true
	list := value
	for {
		elem, rest, more := cutElement(list)
		if err := f.addCoding(value, elem); err != nil {
			return err
		}
		if !more {
			return nil
		}
		list = rest
	}
}

func (f *framing) addCoding(value, elem []byte) error {
	name, params := elem, []byte(nil)
	for i, c := range elem {
		if c == ';' {
			name, params = trimOWS(elem[:i]), elem[i:]
			break
		}
	}
	switch {
	case !isToken(name):
		return malformed("invalid Transfer-Encoding: %q", quote(value))
	case !equalFold(name, "chunked"):
		if f.unsupported == nil {
			f.unsupported = elem
		}
	case params != nil:
		return malformed("chunked with parameters in Transfer-Encoding: %q", quote(value))
	case f.chunkedSeen:
		return malformed("chunked applied twice in Transfer-Encoding: %q", quote(value))
	default:
		f.chunkedSeen = true
	}
	return nil
}

// isChunked reports whether the message is framed by the chunked coding
// alone. Any other coding, before or after chunked, is unsupported: we do
// not decode them, and forwarding them would hand framing decisions to the
// next hop.
func (f *framing) isChunked() bool { return f.chunkedSeen && f.unsupported == nil }

// addConnection records the connection options close, keep-alive and
// upgrade. Other options matter only to StripHopByHop. Elements that are
// not tokens are ignored: no recipient can act on them, so ignoring them
// cannot make two recipients disagree.
func (f *framing) addConnection(value []byte) {
	list := value
	for {
		elem, rest, more := cutElement(list)
		switch {
		case equalFold(elem, "close"):
			f.connClose = true
		case equalFold(elem, "keep-alive"):
			f.connKeepAlive = true
		case equalFold(elem, "upgrade"):
			f.connUpgrade = true
		}
		if !more {
			return
		}
		list = rest
	}
}

// keepAlive applies RFC 9112 §9.3: HTTP/1.1 persists unless told to close,
// HTTP/1.0 only when asked to keep alive.
func (f *framing) keepAlive(minor int) bool {
	if f.connClose {
		return false
	}
	return minor >= 1 || f.connKeepAlive
}
