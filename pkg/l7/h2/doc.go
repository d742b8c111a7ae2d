// Package h2 is weir's HTTP/2 codec: the pieces of RFC 9113 and RFC 7541
// that the proxy's HTTP/2 server needs and that hold no connection state.
//
//   - HPACK encoding (AppendInt, AppendString, AppendField, AppendStatus,
//     AppendTableSizeUpdate): every field a literal without indexing,
//     never Huffman-coded, so that encoding keeps no table and allocates
//     nothing.
//   - Frame writing (AppendFrameHeader, AppendSetting, NextHeaderFrame):
//     frame headers appended to a caller's buffer, and the split of a
//     header block into HEADERS and CONTINUATION frames.
//   - Request header-block decoding (RequestDecoder): the fields an HPACK
//     decoder (golang.org/x/net/http2/hpack) emits, checked and written
//     straight into an h1.Request, so that a request read over HTTP/2
//     runs the same pipeline as one read over HTTP/1.1.
//
// The decoder refuses everything an HTTP/1.1 upstream could read
// differently from the proxy: uppercase or invalid names,
// connection-specific fields, values with CR, LF, NUL or edge
// whitespace, missing, duplicate, unknown or misplaced pseudo-headers, a
// :path that is not visible ASCII in origin form, an authority with a
// path or userinfo, a host that disagrees with :authority, and an invalid
// or repeated content-length.
//
// Connections, streams, flow control and frame parsing are not here:
// package l7 keeps the connection logic, and golang.org/x/net/http2's
// Framer parses frames.
package h2
