// Package h1 is weir's HTTP/1.x codec: a strict, allocation-free parser and
// writer for request and response heads and for message bodies.
//
// It exists instead of net/http because a proxy on one core must not pay for
// maps, strings and goroutines per request. Heads are parsed into reusable
// structs (Request, Response, Header) whose byte slices point into an arena
// the struct owns; once the structs and the Reader's buffer have grown to the
// traffic's size, reading a request, its body and the response allocates
// nothing.
//
// The parser follows RFC 9112 and rejects everything that two HTTP
// implementations could frame differently — the root of request smuggling:
// bare CR, obs-fold, whitespace before a field colon, Transfer-Encoding
// together with Content-Length, conflicting or malformed Content-Length,
// unknown or repeated transfer codings, malformed chunk sizes and chunk data
// not followed by CRLF. A head must complete within Limits.MaxHeaderBytes,
// and the Reader never reads more than that from the connection while
// looking for it.
//
// A proxy built on this package should regenerate the framing headers
// (Content-Length, Transfer-Encoding) from the parsed ContentLength and
// Chunked fields rather than forward the received ones, and drop hop-by-hop
// fields with StripHopByHop, so that the next hop sees exactly the framing
// this package decided on.
package h1
