package h1

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// Default limits, used for the zero fields of Limits.
const (
	DefaultMaxHeaderBytes = 32 << 10
	DefaultMaxHeaders     = 100
)

// Limits bound what a peer may send. Zero (or negative) fields take the
// defaults.
type Limits struct {
	// MaxHeaderBytes bounds a head: the empty lines skipped before it, the
	// request or status line, every field line and the empty line that
	// ends it. It bounds a trailer section the same way. Default 32 KiB.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of field lines of a head or trailer
	// section. Default 100.
	MaxHeaders int
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	return l
}

// Buffer size classes. A connection starts with the smallest, which holds a
// typical head several times over; a head that does not fit moves to a
// larger class for as long as it is needed, so memory per idle connection
// stays at 4 KiB.
var bufClasses = [...]int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

// smallBufSize is the size of the buffer a Reader normally holds.
const smallBufSize = 4 << 10

// bufPools holds one pool per class. Pools are the one piece of
// package-level state: sharing idle buffers between connections is their
// whole point, and sync.Pool is safe for concurrent use.
var bufPools [len(bufClasses)]sync.Pool

// getBuf returns a buffer of at least size bytes. Sizes above the largest
// class are allocated exactly and not pooled.
func getBuf(size int) *[]byte {
	for i, class := range bufClasses {
		if size <= class {
			if p, ok := bufPools[i].Get().(*[]byte); ok {
				return p
			}
			b := make([]byte, class)
			return &b
		}
	}
	b := make([]byte, size)
	return &b
}

// putBuf returns a buffer from getBuf to its pool.
func putBuf(p *[]byte) {
	for i, class := range bufClasses {
		if cap(*p) == class {
			*p = (*p)[:class]
			bufPools[i].Put(p)
			return
		}
	}
}

// maxEmptyReads bounds how many times in a row a source may return no data
// and no error before the Reader gives up, as bufio does: such a source is
// broken and would otherwise spin forever.
const maxEmptyReads = 100

var (
	// errNeedMore is internal: a non-blocking step found too few bytes
	// buffered to make progress.
	errNeedMore = errors.New("h1: need more input")
	// errReleased reports use of a Reader after Release without Reset.
	errReleased = errors.New("h1: Reader used after Release")
	// errBadRead reports a source returning an impossible byte count.
	errBadRead = errors.New("h1: source returned an invalid count")
)

// bodyState tracks whether the bytes after the last head belong to a body,
// so that the next head is never parsed out of an unread body.
type bodyState uint8

const (
	bodyIdle    bodyState = iota // no body outstanding: a head may follow
	bodyPending                  // a head announced a body not yet started
	bodyActive                   // a body is being read
	bodyBroken                   // a body failed; the stream is desynchronised
)

// Reader reads HTTP/1.x messages from a connection through a buffer taken
// from a pool. One Reader serves one connection for its whole life: heads
// are read with ReadRequest or ReadResponse, bodies with the Body methods,
// and raw bytes (a tunnel after an upgrade) with Read.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	src  io.Reader
	bufp *[]byte // the pooled buffer, nil until first needed
	buf  []byte  // *bufp
	r, w int     // unread bytes are buf[r:w]
	// err is an error the source returned along with data; it is
	// reported once the data is used up, as io.Reader asks.
	err error
	lim Limits // limits of the last head read, applied to trailers
	// lineEnds holds the LF offsets of the last block's lines; reused.
	lineEnds []uint32
	state    bodyState // see bodyState
	body     Body      // reused by every body of the connection
}

// NewReader returns a Reader over src.
func NewReader(src io.Reader) *Reader {
	r := &Reader{}
	r.Reset(src)
	return r
}

// Reset makes the Reader read from src, discarding any buffered bytes and
// body state. It keeps the buffer (taking one again after Release).
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.r, r.w = 0, 0
	r.err = nil
	r.lim = Limits{}.withDefaults()
	r.state = bodyIdle
	r.body = Body{}
	r.shrink()
}

// Release returns the buffer to its pool and forgets the source; buffered
// bytes are lost. The Reader may be used again after Reset.
func (r *Reader) Release() {
	if r.bufp != nil {
		putBuf(r.bufp)
	}
	r.bufp, r.buf = nil, nil
	r.src = nil
	r.r, r.w = 0, 0
	r.err = nil
	r.state = bodyIdle
	r.body = Body{}
}

// Buffered returns how many bytes have been read from the source but not
// yet consumed.
func (r *Reader) Buffered() int { return r.w - r.r }

// Read reads raw bytes, buffered ones first, ignoring HTTP framing. It is
// for tunnels: after a 101 response or a successful CONNECT, the bytes that
// follow the head belong to another protocol.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.r < r.w {
		n := copy(p, r.buf[r.r:r.w])
		r.r += n
		return n, nil
	}
	return r.readSource(p)
}

// WriteBufferedTo writes the buffered bytes to w and consumes those
// written. A tunnel calls it once and then copies between the connections
// directly, which lets the kernel splice them.
func (r *Reader) WriteBufferedTo(w io.Writer) (int64, error) {
	if r.r == r.w {
		return 0, nil
	}
	n, err := w.Write(r.buf[r.r:r.w])
	r.r += n
	if err == nil && r.r < r.w {
		err = io.ErrShortWrite
	}
	return int64(n), err
}

// readSource reads from the source into p, bypassing the buffer, after any
// error the source reported earlier.
func (r *Reader) readSource(p []byte) (int, error) {
	if err := r.takeErr(); err != nil {
		return 0, err
	}
	if r.src == nil {
		return 0, errReleased
	}
	n, err := r.src.Read(p)
	if n < 0 || n > len(p) {
		return 0, errBadRead
	}
	if n > 0 && err != nil {
		r.err, err = err, nil
	}
	return n, err
}

// takeErr returns and clears the error deferred by an earlier read.
func (r *Reader) takeErr() error {
	err := r.err
	r.err = nil
	return err
}

// fill reads once from the source into the free space at the end of the
// buffer, at most maxRead bytes when maxRead > 0. The caller makes room
// first. It returns how many bytes arrived; an error that came with data is
// deferred to the next call.
func (r *Reader) fill(maxRead int) (int, error) {
	if err := r.takeErr(); err != nil {
		return 0, err
	}
	if r.src == nil {
		return 0, errReleased
	}
	r.acquire()
	end := len(r.buf)
	if maxRead > 0 && r.w+maxRead < end {
		end = r.w + maxRead
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.w:end])
		if n < 0 || n > end-r.w {
			return 0, errBadRead
		}
		r.w += n
		if n > 0 {
			r.err = err
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

// acquire takes a buffer from the pool if the Reader has none.
func (r *Reader) acquire() {
	if r.bufp == nil {
		r.bufp = getBuf(smallBufSize)
		r.buf = *r.bufp
	}
}

// makeRoom frees space at the end of the buffer, first by moving the unread
// bytes to its start and, when they fill it, by moving to a buffer of at
// least want bytes.
func (r *Reader) makeRoom(want int) {
	r.acquire()
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.w < len(r.buf) {
		return
	}
	r.swapBuf(getBuf(max(want, len(r.buf)+1)))
}

// shrink moves the unread bytes back to a small buffer when a large one was
// only needed for an oversized head, so that one such head does not pin
// megabytes to a keep-alive connection.
func (r *Reader) shrink() {
	if r.bufp == nil || len(r.buf) <= smallBufSize || r.w-r.r > smallBufSize {
		return
	}
	r.swapBuf(getBuf(smallBufSize))
}

// swapBuf moves the unread bytes into p and returns the old buffer to its
// pool.
func (r *Reader) swapBuf(p *[]byte) {
	n := copy(*p, r.buf[r.r:r.w])
	putBuf(r.bufp)
	r.bufp, r.buf = p, *p
	r.r, r.w = 0, n
}

// eofInside turns the end of the input met inside a message into
// io.ErrUnexpectedEOF, so that a truncated message is never mistaken for a
// clean close.
func eofInside(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// skipEmptyLines consumes the CRLF or LF lines that may precede a start
// line (RFC 9112 §2.2), up to budget bytes, and returns how many it
// consumed. It returns io.EOF when the input ends having sent nothing else:
// that is a clean close between messages.
func (r *Reader) skipEmptyLines(budget int) (int, error) {
	skipped := 0
	for {
		switch {
		case r.r < r.w && r.buf[r.r] == '\n':
			r.r++
			skipped++
		case r.r+1 < r.w && r.buf[r.r] == '\r' && r.buf[r.r+1] == '\n':
			r.r += 2
			skipped += 2
		case r.r < r.w && (r.buf[r.r] != '\r' || r.r+1 < r.w):
			return skipped, nil // the start line begins here
		default:
			// Empty, or a lone CR that may start a CRLF: read on.
			allowed := budget - skipped - (r.w - r.r)
			if allowed <= 0 {
				return skipped, tooLarge("more than %d bytes of empty lines before the start line", budget)
			}
			r.makeRoom(0)
			if n, err := r.fill(allowed); n == 0 {
				if err == io.EOF && r.r < r.w {
					err = io.ErrUnexpectedEOF
				}
				return skipped, err
			}
		}
		if skipped > budget {
			return skipped, tooLarge("more than %d bytes of empty lines before the start line", budget)
		}
	}
}

// readBlock returns the next block of lines ending with an empty line — a
// head or a trailer section — and consumes it. The offset of every line's
// LF within the block is left in r.lineEnds, so that the parser need not
// search for them again.
//
// The block must end within budget bytes and hold at most maxFields field
// lines (plus the start line of a head when startLine is set). The Reader
// never asks the source for more than budget bytes, so an endless head
// costs no more than that much reading. The block stays valid until the
// next call on the Reader. Without block, it returns errNeedMore rather
// than read.
func (r *Reader) readBlock(budget, maxFields int, startLine, block bool) ([]byte, error) {
	maxLines := maxFields
	if startLine {
		maxLines++
	}
	r.lineEnds = r.lineEnds[:0]
	scan := 0      // bytes after r.r searched without finding the end
	lineStart := 0 // offset after r.r of the line being searched
	for {
		if i := bytes.IndexByte(r.buf[r.r+scan:r.w], '\n'); i >= 0 {
			lf := scan + i
			if lf >= budget {
				// Checked first so that the outcome never depends on
				// how much the source happened to deliver at once.
				return nil, tooLarge("header section longer than %d bytes", budget)
			}
			r.lineEnds = append(r.lineEnds, uint32(lf))
			if lf == lineStart || lf == lineStart+1 && r.buf[r.r+lineStart] == '\r' {
				return r.takeBlock(lf + 1)
			}
			if r.buf[r.r+lineStart] == '\r' {
				// No start or field line may begin with CR; "\r\r\n"
				// is the probe for parsers that take it as the end.
				return nil, malformed("bare CR at the start of a line: %q", quote(r.buf[r.r+lineStart:r.r+lf]))
			}
			if len(r.lineEnds) > maxLines {
				return nil, tooLarge("more than %d header fields", maxFields)
			}
			lineStart, scan = lf+1, lf+1
			continue
		}
		scan = r.w - r.r
		if scan >= budget {
			return nil, tooLarge("header section longer than %d bytes", budget)
		}
		if !block {
			return nil, errNeedMore
		}
		if r.w == len(r.buf) {
			r.makeRoom(min(4*len(r.buf), budget))
		}
		if n, err := r.fill(budget - scan); n == 0 {
			return nil, eofInside(err)
		}
	}
}

// takeBlock consumes and returns the n bytes of a block found by readBlock.
func (r *Reader) takeBlock(n int) ([]byte, error) {
	b := r.buf[r.r : r.r+n]
	r.r += n
	return b, nil
}

// readLine returns the next line without its LF (a CR before it is left to
// the caller) and consumes it. The line must end within maxLen bytes.
// Without block, it returns errNeedMore rather than read.
func (r *Reader) readLine(maxLen int, block bool) ([]byte, error) {
	scan := 0
	for {
		if i := bytes.IndexByte(r.buf[r.r+scan:r.w], '\n'); i >= 0 {
			lf := scan + i
			if lf >= maxLen {
				break
			}
			line := r.buf[r.r : r.r+lf]
			r.r += lf + 1
			return line, nil
		}
		scan = r.w - r.r
		if scan >= maxLen {
			break
		}
		if !block {
			return nil, errNeedMore
		}
		if r.w == len(r.buf) {
			r.makeRoom(maxLen)
		}
		if n, err := r.fill(0); n == 0 {
			return nil, eofInside(err)
		}
	}
	return nil, malformed("line longer than %d bytes: %q", maxLen, quote(r.buf[r.r:r.w]))
}

// readData copies body bytes into p: buffered bytes first; otherwise a large
// p is read into directly, sparing a copy, and a small one through the
// buffer so that small reads do not each cost a system call.
func (r *Reader) readData(p []byte) (int, error) {
	if r.r < r.w {
		n := copy(p, r.buf[r.r:r.w])
		r.r += n
		return n, nil
	}
	if len(p) >= smallBufSize {
		return r.readSource(p)
	}
	r.r, r.w = 0, 0
	if n, err := r.fill(0); n == 0 {
		return 0, err
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}
