// Package httpsyntax holds the HTTP grammar checks shared by the
// configuration and the health checks, which validate names long before
// any request is parsed, and by the HTTP/2 server's checks of decoded
// fields (pkg/l7/h1 has its own table-driven ones for the HTTP/1.1 hot
// path).
package httpsyntax

// tchar lists the token characters besides letters and digits (RFC 9110
// §5.6.2).
const tchar = "!#$%&'*+-.^_`|~"

// IsToken reports whether s is an RFC 9110 token: the form of methods,
// header names and cookie names.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// IsTokenChar reports whether c may appear in a token.
func IsTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	for i := 0; i < len(tchar); i++ {
		if tchar[i] == c {
			return true
		}
	}
	return false
}
