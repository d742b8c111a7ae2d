package h2

// The HPACK encoder (RFC 7541). It never adds to the dynamic table: every
// field is a literal "without indexing", naming its field by the static
// table where it can. That costs the peer a few bytes per response that a
// dynamic table would save, and spares the encoder the table's
// bookkeeping and the copies of every name and value it would keep; the
// decoder's side (golang.org/x/net/http2/hpack) still uses the peer's
// table in full. Strings go out raw, not Huffman-coded: response heads
// are small, and the CPU is the scarcer resource here.

// AppendInt appends v as an HPACK integer with an n-bit prefix (1 to 8);
// the first byte carries the pattern bits in high (RFC 7541 §5.1).
func AppendInt(b []byte, high byte, n uint, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, high|byte(v))
	}
	b = append(b, high|byte(limit))
	v -= limit
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// AppendString appends s as a raw (not Huffman-coded) string literal
// (RFC 7541 §5.2).
func AppendString[T string | []byte](b []byte, s T) []byte {
	b = AppendInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// AppendField appends the field name: value as a literal without
// indexing (RFC 7541 §6.2.2). The name is lowercased, as HTTP/2 requires
// (RFC 9113 §8.2.1), and indexed when the static table holds it.
func AppendField(b []byte, name, value []byte) []byte {
	var lowered [32]byte
	if len(name) <= len(lowered) {
		low := lowered[:len(name)]
		for i, c := range name {
			low[i] = lowerASCII(c)
		}
		if idx := StaticNameIndex(low); idx > 0 {
			b = AppendInt(b, 0, 4, uint64(idx))
			return AppendString(b, value)
		}
		b = append(b, 0)
		b = AppendString(b, low)
		return AppendString(b, value)
	}
	b = append(b, 0)
	b = AppendInt(b, 0, 7, uint64(len(name)))
	for _, c := range name {
		b = append(b, lowerASCII(c))
	}
	return AppendString(b, value)
}

// AppendContentLength appends content-length: digits, the field the
// static table names at index 28, as a literal without indexing.
func AppendContentLength(b []byte, digits []byte) []byte {
	b = AppendInt(b, 0, 4, 28)
	return AppendString(b, digits)
}

// AppendStatus appends the :status pseudo-header of status (100 to 999):
// one byte for the statuses the static table holds, a literal with an
// indexed name for the others.
func AppendStatus(b []byte, status int) []byte {
	switch status {
	case 200:
		return append(b, 0x80|8)
	case 204:
		return append(b, 0x80|9)
	case 206:
		return append(b, 0x80|10)
	case 304:
		return append(b, 0x80|11)
	case 400:
		return append(b, 0x80|12)
	case 404:
		return append(b, 0x80|13)
	case 500:
		return append(b, 0x80|14)
	}
	b = AppendInt(b, 0, 4, 8)
	return append(b, 3, byte('0'+status/100%10), byte('0'+status/10%10), byte('0'+status%10))
}

// AppendTableSizeUpdate appends a dynamic table size update (RFC 7541
// §6.3), which must open the first header block after the peer lowers
// SETTINGS_HEADER_TABLE_SIZE below what the encoder may use.
func AppendTableSizeUpdate(b []byte, size uint32) []byte {
	return AppendInt(b, 0x20, 5, uint64(size))
}

// StaticNameIndex returns the index in the HPACK static table (RFC 7541
// Appendix A) of the first entry named name (lowercase), or 0.
func StaticNameIndex(name []byte) int {
	switch string(name) {
	case ":authority":
		return 1
	case "accept-charset":
		return 15
	case "accept-encoding":
		return 16
	case "accept-language":
		return 17
	case "accept-ranges":
		return 18
	case "accept":
		return 19
	case "access-control-allow-origin":
		return 20
	case "age":
		return 21
	case "allow":
		return 22
	case "authorization":
		return 23
	case "cache-control":
		return 24
	case "content-disposition":
		return 25
	case "content-encoding":
		return 26
	case "content-language":
		return 27
	case "content-length":
		return 28
	case "content-location":
		return 29
	case "content-range":
		return 30
	case "content-type":
		return 31
	case "cookie":
		return 32
	case "date":
		return 33
	case "etag":
		return 34
	case "expect":
		return 35
	case "expires":
		return 36
	case "from":
		return 37
	case "host":
		return 38
	case "if-match":
		return 39
	case "if-modified-since":
		return 40
	case "if-none-match":
		return 41
	case "if-range":
		return 42
	case "if-unmodified-since":
		return 43
	case "last-modified":
		return 44
	case "link":
		return 45
	case "location":
		return 46
	case "max-forwards":
		return 47
	case "proxy-authenticate":
		return 48
	case "proxy-authorization":
		return 49
	case "range":
		return 50
	case "referer":
		return 51
	case "refresh":
		return 52
	case "retry-after":
		return 53
	case "server":
		return 54
	case "set-cookie":
		return 55
	case "strict-transport-security":
		return 56
	case "transfer-encoding":
		return 57
	case "user-agent":
		return 58
	case "vary":
		return 59
	case "via":
		return 60
	case "www-authenticate":
		return 61
	}
	return 0
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
