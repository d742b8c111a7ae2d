package h1

import (
	"io"
	"syscall"
)

// BodyMode says how a message body is framed (RFC 9112 §6).
type BodyMode uint8

const (
	// NoBody: the message ends with its head.
	NoBody BodyMode = iota
	// Length: the body is ContentLength bytes.
	Length
	// Chunked: the body uses the chunked transfer coding.
	Chunked
	// UntilClose: the body runs until the server closes the connection
	// (responses only), so the connection cannot be reused.
	UntilClose
)

// String returns the mode's name.
func (m BodyMode) String() string {
	switch m {
	case NoBody:
		return "none"
	case Length:
		return "length"
	case Chunked:
		return "chunked"
	case UntilClose:
		return "until-close"
	}
	return "invalid"
}

// maxChunkLine bounds a chunk-size line, extensions included. Extensions are
// almost never used; the bound stops a peer making the Reader buffer an
// endless line.
const maxChunkLine = 4096

// maxChunkSize bounds one chunk (2^62), so that sizes never overflow int64
// arithmetic.
const maxChunkSize = 1 << 62

// maxChunkSizeDigits bounds the hex digits of a chunk size; leading zeros
// beyond this are a probe, not a real encoder.
const maxChunkSizeDigits = 16

// maxExtensionBytes is how many bytes of chunk extensions a body may carry
// beyond its data size: a peer sending 1-byte chunks with kilobyte
// extensions makes the proxy parse far more than it forwards.
const maxExtensionBytes = 16 << 10

// chunkStep is where a chunked body decoder is in its grammar.
type chunkStep uint8

const (
	stepSize    chunkStep = iota // expecting a chunk-size line
	stepData                     // inside chunk data, Body.left bytes to go
	stepDataEnd                  // expecting the CRLF after chunk data
	stepTrailer                  // expecting the trailer section
	stepDone                     // the body ended
)

// Body reads one message body, decoding its framing. A Reader owns a
// single Body that it resets for each message, so bodies cost no
// allocation; a *Body is valid until the Reader's next body or Reset.
//
// Read returns io.EOF at the end of the body, possibly together with the
// last bytes. A body cut short by the end of the input returns
// io.ErrUnexpectedEOF; a malformed chunked encoding returns an *Error
// wrapping ErrMalformed (or ErrHeaderTooLarge for a trailer section over
// Limits). Either way the connection is unusable and must be closed. Errors
// are sticky.
type Body struct {
	r       *Reader
	mode    BodyMode
	left    int64 // Length: bytes left; Chunked: bytes left in this chunk
	step    chunkStep
	trailer *Header
	// extBytes and dataBytes weigh chunk extensions against chunk data,
	// see maxExtensionBytes.
	extBytes, dataBytes int64
	err                 error // io.EOF once the body ended, or its failure
	lr                  io.LimitedReader
}

var (
	_ io.Reader   = (*Body)(nil)
	_ io.WriterTo = (*Body)(nil)
)

// BodyLength returns the Reader's Body set to read n bytes (none when
// n <= 0).
func (r *Reader) BodyLength(n int64) *Body {
	if n <= 0 {
		return r.startBody(NoBody, 0, nil)
	}
	return r.startBody(Length, n, nil)
}

// BodyChunked returns the Reader's Body set to decode a chunked body. The
// trailer fields are added to trailer, which is reset first; with a nil
// trailer they are checked and dropped. The trailer section obeys the
// Limits of the last head read.
func (r *Reader) BodyChunked(trailer *Header) *Body {
	if trailer != nil {
		trailer.Reset()
	}
	return r.startBody(Chunked, 0, trailer)
}

// BodyUntilClose returns the Reader's Body set to read until the source
// ends.
func (r *Reader) BodyUntilClose() *Body { return r.startBody(UntilClose, 0, nil) }

// RequestBody returns the Reader's Body set to read req's body.
func (r *Reader) RequestBody(req *Request, trailer *Header) *Body {
	return r.bodyFor(req.BodyMode, req.ContentLength, trailer)
}

// ResponseBody returns the Reader's Body set to read resp's body.
func (r *Reader) ResponseBody(resp *Response, trailer *Header) *Body {
	return r.bodyFor(resp.BodyMode, resp.ContentLength, trailer)
}

func (r *Reader) bodyFor(mode BodyMode, length int64, trailer *Header) *Body {
	switch mode {
	case Length:
		return r.BodyLength(length)
	case Chunked:
		return r.BodyChunked(trailer)
	case UntilClose:
		return r.BodyUntilClose()
	}
	return r.startBody(NoBody, 0, nil)
}

func (r *Reader) startBody(mode BodyMode, n int64, trailer *Header) *Body {
	r.body = Body{r: r, mode: mode, left: n, trailer: trailer}
	if r.state != bodyBroken {
		r.state = bodyActive
	}
	if mode == NoBody {
		r.body.finish(io.EOF)
	}
	return &r.body
}

// Mode returns how the body is framed.
func (b *Body) Mode() BodyMode { return b.mode }

// Done reports whether the body has been read to its end.
func (b *Body) Done() bool { return b.err == io.EOF }

// finish records the end of the body, or its failure, and tells the Reader
// whether a head may follow.
func (b *Body) finish(err error) {
	b.err = err
	if b.r == nil || b.r.state == bodyBroken {
		return // a failed body desynchronised the stream for good
	}
	if err == io.EOF {
		b.r.state = bodyIdle
	} else {
		b.r.state = bodyBroken
	}
}

// Read reads decoded body bytes.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case Length:
		n, err = b.readLength(p)
	case Chunked:
		n, err = b.readChunked(p)
	case UntilClose:
		n, err = b.r.readData(p)
	default:
		err = io.EOF
	}
	if err != nil {
		b.finish(err)
	}
	return n, err
}

func (b *Body) readLength(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.readData(p)
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	return n, eofInside(err)
}

func (b *Body) readChunked(p []byte) (int, error) {
	if err := b.advance(true); err != nil {
		return 0, err
	}
	if b.step == stepDone {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.readData(p)
	if err != nil {
		return n, eofInside(err)
	}
	return n, b.consumed(n)
}

// consumed accounts for n bytes of chunk data handed to the caller. When
// they end the chunk, it decodes on as far as the buffered bytes allow, so
// that the caller learns of the body's end together with its last bytes
// and need not make one more call (or wait on the network) to find out.
func (b *Body) consumed(n int) error {
	b.left -= int64(n)
	b.dataBytes += int64(n)
	if b.left > 0 {
		return nil
	}
	b.step = stepDataEnd
	switch err := b.advance(false); {
	case err == errNeedMore:
		return nil
	case err != nil:
		return err
	case b.step == stepDone:
		return io.EOF
	}
	return nil
}

// advance decodes framing until chunk data or the end of the body. Without
// block it uses only buffered bytes and returns errNeedMore when they run
// out; every step consumes input only once complete, so it resumes cleanly.
func (b *Body) advance(block bool) error {
	for {
		var err error
		switch b.step {
		case stepData, stepDone:
			return nil
		case stepDataEnd:
			err = b.readDataEnd(block)
		case stepSize:
			err = b.readSize(block)
		case stepTrailer:
			err = b.readTrailer(block)
		}
		if err != nil {
			return err
		}
	}
}

// readDataEnd consumes the CRLF that must follow chunk data. Nothing else is
// accepted, not even a bare LF: a decoder that tolerated other bytes here
// would disagree with one that does not about where the next chunk starts.
func (b *Body) readDataEnd(block bool) error {
	r := b.r
	for r.w-r.r < 2 {
		if r.r < r.w && r.buf[r.r] != '\r' {
			break
		}
		if !block {
			return errNeedMore
		}
		if r.w == len(r.buf) {
			r.makeRoom(0)
		}
		if n, err := r.fill(0); n == 0 {
			return eofInside(err)
		}
	}
	if r.w-r.r < 2 || r.buf[r.r] != '\r' || r.buf[r.r+1] != '\n' {
		return malformed("chunk data not followed by CRLF: %q", quote(r.buf[r.r:r.w]))
	}
	r.r += 2
	b.step = stepSize
	return nil
}

// readSize consumes a chunk-size line: 1 to 16 hex digits, optional
// extensions after ';' (checked for forbidden bytes and ignored), and CRLF
// or LF.
func (b *Body) readSize(block bool) error {
	line, err := b.r.readLine(maxChunkLine, block)
	if err != nil {
		return err
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	size, digits, err := parseChunkSize(line)
	if err != nil {
		return err
	}
	if err := b.checkExtension(line, line[digits:]); err != nil {
		return err
	}
	if size == 0 {
		b.step = stepTrailer
		return nil
	}
	b.left = size
	b.step = stepData
	return nil
}

// parseChunkSize parses the hex digits at the start of a chunk-size line and
// returns the size and how many digits it had.
func parseChunkSize(line []byte) (size int64, digits int, err error) {
	for digits < len(line) {
		v, ok := hexValue(line[digits])
		if !ok {
			break
		}
		if digits == maxChunkSizeDigits || size > (maxChunkSize-int64(v))>>4 {
			return 0, 0, malformed("chunk size too large: %q", quote(line))
		}
		size = size<<4 | int64(v)
		digits++
	}
	if digits == 0 {
		return 0, 0, malformed("chunk size not hex: %q", quote(line))
	}
	return size, digits, nil
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// checkExtension validates what follows the size digits: nothing, or
// optional whitespace then ';' and extension bytes. Whitespace not followed
// by ';' is rejected, as RFC 9112 allows none there.
func (b *Body) checkExtension(line, rest []byte) error {
	ext := trimOWSLeft(rest)
	if len(ext) == 0 {
		if len(rest) > 0 {
			return malformed("whitespace after chunk size: %q", quote(line))
		}
		return nil
	}
	if ext[0] != ';' {
		return malformed("chunk size followed by %s: %q", badByteMsg(ext[0]), quote(line))
	}
	if i := invalidByte(ext, classChunkExt); i >= 0 {
		return malformed("chunk extension with %s: %q", badByteMsg(ext[i]), quote(line))
	}
	b.extBytes += int64(len(ext))
	if b.extBytes > maxExtensionBytes && b.extBytes > b.dataBytes {
		return malformed("chunk extensions (%d bytes) outweigh chunk data (%d bytes)", b.extBytes, b.dataBytes)
	}
	return nil
}

func trimOWSLeft(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	return b
}

// readTrailer consumes the trailer section and the empty line ending the
// body, under the same rules and limits as a head.
func (b *Body) readTrailer(block bool) error {
	lim := b.r.lim.withDefaults()
	section, err := b.r.readBlock(lim.MaxHeaderBytes, lim.MaxHeaders, false, block)
	if err != nil {
		return err
	}
	if err := parseFields(section, 0, b.r.lineEnds, b.trailer, false); err != nil {
		return err
	}
	b.step = stepDone
	return nil
}

// WriteTo writes the decoded body to w until its end, which makes io.Copy
// use the Reader's buffer instead of allocating one. A length or
// until-close body whose bytes are not buffered yet is handed to w's
// ReadFrom when both ends are kernel sockets, so that Linux can splice it
// without copying through user space. A write error leaves the body
// unfinished (the connection cannot be reused unless the body is read on).
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for b.err == nil {
		n, err := b.writeSome(w)
		total += n
		if err != nil {
			return total, err
		}
	}
	if b.err == io.EOF {
		return total, nil
	}
	return total, b.err
}

// writeSome makes one step of WriteTo. Errors of the body are recorded by
// finish; errors of w are returned as is.
func (b *Body) writeSome(w io.Writer) (int64, error) {
	r := b.r
	switch {
	case b.mode == NoBody || b.mode == Length && b.left == 0:
		b.finish(io.EOF)
		return 0, nil
	case b.mode == Chunked && b.step != stepData:
		if err := b.advance(true); err != nil {
			b.finish(err)
		} else if b.step == stepDone {
			b.finish(io.EOF)
		}
		return 0, nil
	case r.r == r.w && r.err == nil && b.mode != Chunked && canSplice(r.src, w):
		return b.spliceTo(w.(io.ReaderFrom))
	case r.r == r.w:
		r.r, r.w = 0, 0
		if n, err := r.fill(0); n == 0 {
			if b.mode == UntilClose && err == io.EOF {
				b.finish(io.EOF)
			} else {
				b.finish(eofInside(err))
			}
		}
		return 0, nil
	}
	return b.writeBuffered(w)
}

// writeBuffered writes the buffered part of the body to w.
func (b *Body) writeBuffered(w io.Writer) (int64, error) {
	r := b.r
	chunk := r.buf[r.r:r.w]
	if b.mode != UntilClose && int64(len(chunk)) > b.left {
		chunk = chunk[:b.left]
	}
	n, err := w.Write(chunk)
	r.r += n
	switch b.mode {
	case Length:
		b.left -= int64(n)
	case Chunked:
		if cerr := b.consumed(n); cerr == io.EOF {
			b.finish(io.EOF)
		} else if cerr != nil {
			b.finish(cerr)
		}
	}
	if err == nil && n < len(chunk) {
		err = io.ErrShortWrite
	}
	return int64(n), err
}

// spliceTo hands the unbuffered rest of a length or until-close body to
// w.ReadFrom.
func (b *Body) spliceTo(w io.ReaderFrom) (int64, error) {
	src := b.r.src
	if b.mode == Length {
		b.lr = io.LimitedReader{R: src, N: b.left}
		src = &b.lr
	}
	n, err := w.ReadFrom(src)
	if b.mode == Length {
		b.left = b.lr.N
	}
	switch {
	case err != nil:
		return n, err
	case b.mode == Length && b.left > 0:
		b.finish(io.ErrUnexpectedEOF)
	default:
		b.finish(io.EOF)
	}
	return n, nil
}

// canSplice reports whether copying src to w through w.ReadFrom is likely
// to reach the kernel's splice or sendfile: both must be file-descriptor
// backed. Otherwise ReadFrom may fall back to allocating a buffer per call,
// which the Reader's own buffer avoids.
func canSplice(src io.Reader, w io.Writer) bool {
	if _, ok := w.(io.ReaderFrom); !ok {
		return false
	}
	_, srcFD := src.(syscall.Conn)
	_, dstFD := w.(syscall.Conn)
	return srcFD && dstFD
}
