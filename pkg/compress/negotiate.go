package compress

import "bytes"

// Negotiation of Accept-Encoding (RFC 9110 §12.5.3), over the raw field
// values without allocating.

// qUnset marks a coding the client did not name.
const qUnset = -1

// acceptable holds the client's weight, in thousandths, for each encoding
// weir has, identity, and the wildcard.
type acceptable struct {
	q        [numEncodings]int
	identity int
	star     int
}

// negotiate picks the encoding for a response from the Accept-Encoding
// field values: of the encodings in prefs that the client accepts, the one
// it weighs highest, ties going to the earlier in prefs. It returns 0 (no
// encoding) when the client has no Accept-Encoding field, refuses every
// encoding in prefs, or weighs identity above the best of them. A coding
// the client does not name is acceptable only through "*".
func negotiate(prefs []Encoding, values [][]byte) Encoding {
	if len(values) == 0 {
		return 0 // no field: the client may not decode anything
	}
	var a acceptable
	for i := range a.q {
		a.q[i] = qUnset
	}
	a.identity, a.star = qUnset, qUnset
	for _, v := range values {
		a.parse(v)
	}
	best, bestQ := Encoding(0), 0
	for _, e := range prefs {
		if !e.valid() {
			continue
		}
		q := a.q[e]
		if q == qUnset {
			q = max(a.star, 0)
		}
		if q > bestQ {
			best, bestQ = e, q
		}
	}
	identity := a.identity
	if identity == qUnset {
		identity = a.star // "*" covers identity too when it is not named
	}
	if best == 0 || identity > bestQ {
		return 0
	}
	return best
}

// parse records the weights of one Accept-Encoding field value. When a
// coding is named twice, the first mention counts.
func (a *acceptable) parse(v []byte) {
	for len(v) > 0 {
		var elem []byte
		elem, v, _ = bytes.Cut(v, []byte(","))
		name, params, _ := bytes.Cut(elem, []byte(";"))
		name = bytes.TrimSpace(name)
		if len(name) == 0 {
			continue
		}
		q, ok := weight(params)
		if !ok {
			continue // a malformed weight: ignore the element
		}
		var slot *int
		switch {
		case string(name) == "*":
			slot = &a.star
		case asciiEqualFold(name, "identity"):
			slot = &a.identity
		default:
			e := encodingOf(name)
			if e == 0 {
				continue
			}
			slot = &a.q[e]
		}
		if *slot == qUnset {
			*slot = q
		}
	}
}

// weight parses the parameters after a coding for its q-value, in
// thousandths; a coding without one weighs 1000.
func weight(params []byte) (int, bool) {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte(";"))
		k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if !ok || !asciiEqualFold(bytes.TrimSpace(k), "q") {
			continue
		}
		return parseQ(bytes.TrimSpace(v))
	}
	return 1000, true
}

// parseQ parses a qvalue: 0, 1, or 0 or 1 followed by up to three
// decimals (1 only by zeros).
func parseQ(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 5 || v[0] != '0' && v[0] != '1' {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range v[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// asciiEqualFold compares b with the lower-case ASCII constant s,
// ignoring case, without allocating.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case and any parameters ("no-transform", "accept-encoding").
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var elem []byte
		elem, v, _ = bytes.Cut(v, []byte(","))
		name, _, _ := bytes.Cut(elem, []byte("="))
		if asciiEqualFold(bytes.TrimSpace(name), token) {
			return true
		}
	}
	return false
}
