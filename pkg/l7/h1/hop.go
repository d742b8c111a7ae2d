package h1

// IsHopByHop reports whether name is a hop-by-hop field that a proxy must
// not forward (RFC 9110 §7.6.1, plus the Keep-Alive, Proxy-Connection and
// proxy authentication fields that older software treats as such):
// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade, Proxy-Authenticate and Proxy-Authorization. Fields named by the
// Connection field are hop-by-hop too; see ConnectionListed.
func IsHopByHop(name []byte) bool {
	switch len(name) {
	case len("te"):
		return equalFold(name, "te")
	case len("trailer"):
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case len("connection"):
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case len("proxy-connection"):
		return equalFold(name, "proxy-connection")
	case len("transfer-encoding"):
		return equalFold(name, "transfer-encoding")
	case len("proxy-authenticate"):
		return equalFold(name, "proxy-authenticate")
	case len("proxy-authorization"):
		return equalFold(name, "proxy-authorization")
	}
	return false
}

// ConnectionListed reports whether name is among the options of h's
// Connection fields (compared case-insensitively). A proxy must drop the
// fields so named along with Connection itself.
func ConnectionListed(h *Header, name []byte) bool {
	for i := index(h, "connection", 0); i >= 0; i = index(h, "connection", i+1) {
		if listContainsFold(h.bytes(h.fields[i].value), name) {
			return true
		}
	}
	return false
}

// StripHopByHop removes from h every hop-by-hop field and every field named
// by a Connection option, as a proxy must before forwarding (RFC 9110
// §7.6.1). It allocates nothing.
//
// Call it before adding the proxy's own fields: a client may name any field
// in Connection, and one it names must not take a proxy-added field (such
// as X-Forwarded-For) with it.
func StripHopByHop(h *Header) {
	// The Connection fields are kept until the end, so the k-th one is
	// still the k-th after fields named by earlier options are removed.
	for k := 0; ; k++ {
		value, ok := nthValue(h, "connection", k)
		if !ok {
			break
		}
		for list := value; ; {
			option, rest, more := cutElement(list)
			if isToken(option) && !equalFold(option, "connection") {
				deleteFrom(h, option, 0)
			}
			if !more {
				break
			}
			list = rest
		}
	}
	h.filter(0, func(name []byte) bool { return !IsHopByHop(name) })
}

// nthValue returns the value of the k-th field named name, counting from 0.
func nthValue(h *Header, name string, k int) ([]byte, bool) {
	for i := index(h, name, 0); i >= 0; i = index(h, name, i+1) {
		if k == 0 {
			return h.bytes(h.fields[i].value), true
		}
		k--
	}
	return nil, false
}
