package h1

import (
	"io"
	"net"
	"strconv"
)

// The Append functions write message heads into a caller's buffer. They do
// not validate: a proxy writes back what a Reader has validated, and bytes
// of its own configuration it has checked once with ValidFieldName and
// ValidFieldValue. With a buffer of sufficient capacity they allocate
// nothing.

// AppendRequestLine appends "method SP target SP HTTP/1.minor CRLF" to dst.
func AppendRequestLine(dst, method, target []byte, minor int) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1."...)
	dst = strconv.AppendInt(dst, int64(minor), 10)
	return append(dst, "\r\n"...)
}

// AppendStatusLine appends "HTTP/1.minor SP status SP reason CRLF" to dst.
// The reason is written as given, even empty (the space before it stays);
// pass StatusText(status) for the standard one.
func AppendStatusLine(dst []byte, minor, status int, reason []byte) []byte {
	dst = append(dst, "HTTP/1."...)
	dst = strconv.AppendInt(dst, int64(minor), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	return append(dst, "\r\n"...)
}

// AppendField appends "name: value CRLF" to dst.
func AppendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// AppendContentLength appends "Content-Length: n CRLF" to dst, the field a
// proxy writes in place of the one it received.
func AppendContentLength(dst []byte, n int64) []byte {
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, "\r\n"...)
}

// AppendChunkedEncoding appends "Transfer-Encoding: chunked CRLF" to dst.
func AppendChunkedEncoding(dst []byte) []byte {
	return append(dst, "Transfer-Encoding: chunked\r\n"...)
}

// ChunkedWriter encodes a body with the chunked transfer coding. Each Write
// becomes one chunk, so a proxy relaying a body keeps the sender's pacing.
// Its zero value needs Reset before use; it allocates nothing once Close
// has sized its buffer for the trailers.
type ChunkedWriter struct {
	w io.Writer
	// sizeLine holds a chunk's size in hex and its CRLF.
	sizeLine [maxChunkSizeDigits + 2]byte
	dataEnd  [2]byte
	// parts and vec hand the size line, the data and its CRLF to the
	// writer at once: on a socket net.Buffers uses writev, one system
	// call per chunk without copying the data.
	parts [3][]byte
	vec   net.Buffers
	// tail buffers the last chunk and the trailer section.
	tail []byte
}

var _ io.Writer = (*ChunkedWriter)(nil)

// NewChunkedWriter returns a ChunkedWriter writing to w.
func NewChunkedWriter(w io.Writer) *ChunkedWriter {
	cw := &ChunkedWriter{}
	cw.Reset(w)
	return cw
}

// Reset makes the writer start a new body on w.
func (cw *ChunkedWriter) Reset(w io.Writer) {
	cw.w = w
	cw.dataEnd = [2]byte{'\r', '\n'}
}

// Write writes p as one chunk: size line, data, CRLF. An empty p writes
// nothing, since a chunk of size zero would end the body. It returns how
// many bytes of p were written.
func (cw *ChunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	line := strconv.AppendUint(cw.sizeLine[:0], uint64(len(p)), 16)
	line = append(line, '\r', '\n')
	cw.parts = [3][]byte{line, p, cw.dataEnd[:]}
	cw.vec = cw.parts[:]
	n, err := cw.vec.WriteTo(cw.w)
	cw.parts[1] = nil // do not keep the caller's buffer alive
	written := min(max(int(n)-len(line), 0), len(p))
	if err == nil && written < len(p) {
		err = io.ErrShortWrite
	}
	return written, err
}

// Close ends the body: the last chunk, the trailer fields (trailer may be
// nil) and the final CRLF, in one write. It does not close the underlying
// writer.
func (cw *ChunkedWriter) Close(trailer *Header) error {
	cw.tail = append(cw.tail[:0], "0\r\n"...)
	if trailer != nil {
		cw.tail = trailer.AppendTo(cw.tail)
	}
	cw.tail = append(cw.tail, "\r\n"...)
	_, err := cw.w.Write(cw.tail)
	return err
}
