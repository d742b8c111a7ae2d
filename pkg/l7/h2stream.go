package l7

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/l7/h2"
	"golang.org/x/net/http2"
)

// h2Stream is one request on an HTTP/2 connection, and its downstream.
type h2Stream struct {
	hc *h2Conn
	id uint32
	px request
	// cond (on hc.mu) wakes the stream's goroutine for body bytes, send
	// window, or the end of the stream.
	cond sync.Cond

	// Guarded by hc.mu.
	rbuf []byte // request body bytes received and not yet read
	roff int
	// remoteClosed: the client ended its side; localClosed: the response
	// ended; waitingSend: the goroutine waits for send window.
	remoteClosed, localClosed, waitingSend bool
	recvWin, credit, sendWin               int64
	// declared is the request's Content-Length (-1: none), received the
	// body bytes so far.
	declared, received int64
	// err, once set, ends the stream for its goroutine: reset by either
	// side, or the connection gone.
	err error
	// abort ends the upstream exchange when the stream ends early.
	abort abort
	// bodyAbandoned says the upstream exchange stopped reading the
	// request body (guarded by hc.mu).
	bodyAbandoned bool
	// grpcDeadline is when a gRPC request's grpc-timeout passes; zero
	// without one.
	grpcDeadline time.Time

	// The stream goroutine's own.
	head        []byte // the encoded response head, not yet sent
	headPending bool
	headSent    bool
	// left is how much of a body of known length is still to come; -1
	// when the length is unknown.
	left  int64
	block []byte
	in    h2In
}

var _ downstream = (*h2Stream)(nil)

var h2StreamPool = sync.Pool{New: func() any {
	st := new(h2Stream)
	st.in.st = st
	return st
}}

func (hc *h2Conn) newStream(id uint32) *h2Stream {
	st := h2StreamPool.Get().(*h2Stream)
	st.hc, st.id = hc, id
	st.cond.L = &hc.mu
	req := &st.px.req
	req.Header.Reset()
	req.Method, req.Target, req.Host = req.Method[:0], req.Target[:0], req.Host[:0]
	req.Expect100 = false
	st.px.reqTrailer.Reset()
	st.recvWin, st.credit, st.sendWin = h2StreamWindow, 0, hc.peerInitWin
	st.declared, st.received = -1, 0
	st.remoteClosed, st.localClosed, st.waitingSend = false, false, false
	st.err, st.headPending, st.headSent, st.bodyAbandoned = nil, false, false, false
	st.abort.reset()
	st.px.abort = &st.abort
	return st
}

func (st *h2Stream) release() {
	st.px.srv, st.px.down, st.px.sess.Ctx = nil, nil, nil
	st.hc, st.cond.L = nil, nil
	if cap(st.rbuf) > 64<<10 {
		st.rbuf = nil
	}
	st.rbuf, st.roff = st.rbuf[:0], 0
	h2StreamPool.Put(st)
}

// fail ends the stream for its goroutine, and the upstream exchange it
// may be waiting on; hc.mu is held.
func (st *h2Stream) fail(err error) {
	if st.err == nil {
		st.err = err
	}
	st.abort.fire(st.err)
	st.cond.Broadcast()
}

// headerBlock is the header block being decoded, and what the connection
// knows of its stream.
type headerBlock struct {
	h2.RequestDecoder
	// st is the stream a request block belongs to; nil while a block is
	// decoded only to keep the HPACK state (a refused or ignored stream).
	st *h2Stream
	id uint32
	// trailer says the block is a request's trailer section, decoded into
	// Trailers until the stream is known to be still there.
	trailer, endStream bool
	// refuse is the RST_STREAM code to answer once the block is decoded.
	refuse http2.ErrCode
	// raw counts the block's encoded bytes.
	raw int
}

// start resets the block for a new HEADERS frame on stream id.
func (hb *headerBlock) start(id uint32, endStream bool) {
	hb.st, hb.id, hb.trailer, hb.endStream, hb.refuse, hb.raw = nil, id, false, endStream, 0, 0
}

func (hc *h2Conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return connErr(http2.ErrCodeProtocol, "HEADERS on server stream %d", id)
	}
	hb := &hc.hb
	hb.start(id, f.StreamEnded())
	if f.HasPriority() && f.Priority.StreamDep == id {
		hb.refuse = http2.ErrCodeProtocol
	}
	hc.mu.Lock()
	st := hc.streams[id]
	switch {
	case st != nil:
		hb.trailer = true
		switch {
		case st.remoteClosed:
			hb.refuse = http2.ErrCodeStreamClosed
		case !f.StreamEnded():
			hb.refuse = http2.ErrCodeProtocol // trailers end the stream
		}
	case id <= hc.lastID:
		switch {
		case hc.wasReset(id):
			// Trailers or a late block of a stream this side reset:
			// decoded for the HPACK state, and dropped.
		case id < hc.lastID:
			// New streams' identifiers only grow (RFC 9113 §5.1.1).
			hc.mu.Unlock()
			return connErr(http2.ErrCodeProtocol, "HEADERS on stream %d after stream %d", id, hc.lastID)
		default:
			hc.mu.Unlock()
			return connErr(http2.ErrCodeStreamClosed, "HEADERS on closed stream %d", id)
		}
	default:
		hc.lastID = id
		switch {
		case hc.goingAway || hc.closed:
			// Past the GOAWAY's last stream: decoded, never served.
		case len(hc.streams) >= h2MaxStreams:
			hb.refuse = http2.ErrCodeRefusedStream
		case hc.running >= h2MaxRunning:
			hc.mu.Unlock()
			return connErr(http2.ErrCodeEnhanceYourCalm, "%d requests in flight", hc.running)
		default:
			hb.st = hc.newStream(id)
		}
	}
	hc.mu.Unlock()
	switch {
	case hb.trailer:
		hb.StartTrailers()
	case hb.st != nil:
		hb.StartRequest(&hb.st.px.req, hb.endStream)
	default:
		hb.StartDiscard()
	}
	return hc.decodeFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (hc *h2Conn) onContinuation(f *http2.ContinuationFrame) error {
	// The Framer checks that it follows its stream's HEADERS.
	return hc.decodeFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

// decodeFragment decodes one fragment of a header block and, at its end,
// acts on the block.
func (hc *h2Conn) decodeFragment(frag []byte, end bool) error {
	hb := &hc.hb
	hb.raw += len(frag)
	if hb.raw > 2*hb.MaxBytes+64<<10 {
		// Bounds the work of a block that never ends (CONTINUATION flood).
		return connErr(http2.ErrCodeEnhanceYourCalm, "header block of stream %d over %d bytes", hb.id, hb.raw)
	}
	if _, err := hc.dec.Write(frag); err != nil {
		return connErr(http2.ErrCodeCompression, "stream %d: %v", hb.id, err)
	}
	if !end {
		return nil
	}
	if err := hc.dec.Close(); err != nil {
		return connErr(http2.ErrCodeCompression, "stream %d: %v", hb.id, err)
	}
	return hc.headersDone()
}

// headersDone acts on a decoded header block: a new request, or a
// request's trailers.
func (hc *h2Conn) headersDone() error {
	hb := &hc.hb
	st := hb.st
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hb.trailer {
		st = hc.streams[hb.id]
		switch {
		case st == nil: // reset meanwhile
		case hb.refuse != 0:
			hc.resetLocked(st, hb.refuse)
		case hb.Err() != nil || hb.TooLarge() || st.declared >= 0 && st.received != st.declared:
			hc.resetLocked(st, http2.ErrCodeProtocol)
		default:
			st.px.reqTrailer.CopyFrom(&hb.Trailers)
			hc.closeRemoteLocked(st)
			st.cond.Broadcast()
		}
		return nil
	}
	if hb.refuse != 0 {
		hc.queueReset(hb.id, hb.refuse)
	}
	if st == nil {
		return nil
	}
	if hb.refuse != 0 {
		hb.st = nil
		st.release()
		return nil
	}
	status, err := hb.FinishRequest()
	hb.st = nil
	if err != nil {
		hc.srv.Logger.Debug("malformed http2 request", "service", hc.srv.Name, "client", hc.remote, "stream", hb.id, "err", err)
		hc.queueReset(hb.id, http2.ErrCodeProtocol)
		st.release()
		return nil
	}
	st.declared = hb.Declared()
	st.remoteClosed = hb.endStream
	hc.streams[st.id] = st
	if hc.running == 0 {
		hc.nc.SetReadDeadline(time.Time{})
	}
	hc.running++
	hc.wg.Add(1)
	hc.srv.workers.run(job{hc: hc, st: st, status: status})
	return nil
}

// runStream serves the request of st, or answers it with status when
// not 0.
func (hc *h2Conn) runStream(st *h2Stream, status int) {
	defer hc.wg.Done()
	px := &st.px
	px.srv, px.down, px.https, px.bodyDone = hc.srv, st, hc.tls != nil, false
	px.sess.reset(px, HTTP2, hc.remote, hc.tls)
	px.sess.GRPC = isGRPC(&px.req)
	st.grpcDeadline = time.Time{}
	if px.sess.GRPC {
		// Read before any filter may change the head: the client's
		// deadline binds the proxy whatever the upstream is told.
		st.grpcDeadline = grpcDeadline(&px.req, px.sess.Start)
	}
	if o := hc.srv.Observer; o != nil {
		o.StreamOpened()
	}
	if status != 0 {
		if status == 431 {
			hc.srv.ClientLimits.count(LimitHeader)
		}
		px.respond(status, nil, nil)
	} else {
		px.serve()
	}
	hc.streamDone(st)
}

// streamDone closes the stream once its request was served: a response
// cut short is reset, so the client cannot take it for a whole one; a
// client still sending a body nobody reads is told to stop (RFC 9113
// §8.1).
func (hc *h2Conn) streamDone(st *h2Stream) {
	hc.mu.Lock()
	switch {
	case st.err != nil:
	case !st.localClosed:
		hc.resetLocked(st, http2.ErrCodeInternal)
	case !st.remoteClosed:
		hc.resetLocked(st, http2.ErrCodeNo)
	}
	if hc.streams[st.id] == st {
		delete(hc.streams, st.id)
	}
	// Body bytes still buffered are given back to the connection.
	hc.returnCredit(nil, int64(len(st.rbuf)-st.roff))
	hc.running--
	hc.setIdleDeadlineLocked()
	hc.mu.Unlock()
	hc.kick()
	st.release()
}

// errLocked returns the error that ended the stream, if any.
func (st *h2Stream) errLocked() error {
	st.hc.mu.Lock()
	defer st.hc.mu.Unlock()
	return st.err
}

// closeLocal records that the response ended.
func (st *h2Stream) closeLocal() {
	hc := st.hc
	hc.mu.Lock()
	st.localClosed = true
	if st.remoteClosed && hc.streams[st.id] == st {
		delete(hc.streams, st.id)
	}
	hc.mu.Unlock()
}

// writeInterim sends a header block that ends with the headers (no
// stream end): 100 Continue and other interim responses.
func (st *h2Stream) writeInterim(block []byte) error {
	hc := st.hc
	hc.lockWriter()
	if err := st.errLocked(); err != nil {
		hc.unlockWriter()
		return err
	}
	hc.writeHeaderBlock(st.id, block, false)
	return hc.unlockWriter()
}

// continue100 implements downstream.
func (st *h2Stream) continue100() error {
	st.block = h2.AppendStatus(st.block[:0], 100)
	return st.writeInterim(st.block)
}

// interim implements downstream: 1xx responses are relayed as HEADERS
// that do not end the stream.
func (st *h2Stream) interim(status int, _ []byte, h *h1.Header) error {
	st.block = appendResponseFields(h2.AppendStatus(st.block[:0], status), h)
	return st.writeInterim(st.block)
}

// appendResponseFields encodes h's fields but the connection-specific
// ones and Content-Length, which HTTP/2 frames itself.
func appendResponseFields(b []byte, h *h1.Header) []byte {
	if h == nil {
		return b
	}
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if h1.IsHopByHop(name) || asciiEqualFold(name, "Content-Length") {
			continue
		}
		b = h2.AppendField(b, name, value)
	}
	return b
}

// writeHead implements downstream. The head waits to leave with the first
// body bytes, or with the stream's end.
func (st *h2Stream) writeHead(status int, _ []byte, h *h1.Header, length int64, noBody bool) error {
	b := appendResponseFields(h2.AppendStatus(st.head[:0], status), h)
	if id := st.px.sess.RequestID; len(id) > 0 && !setByFilter(h) {
		var name [len(RequestIDHeader)]byte
		b = h2.AppendField(b, append(name[:0], RequestIDHeader...), id)
	}
	if length >= 0 && status != 204 && status != 304 {
		var digits [20]byte
		b = h2.AppendContentLength(b, strconv.AppendInt(digits[:0], length, 10))
	}
	st.head, st.headPending = b, true
	st.left = -1
	if length >= 0 && !noBody {
		st.left = length
	}
	return nil
}

// held implements downstream: a stream's writes go out as they come.
func (st *h2Stream) held() *bufio.Writer { return nil }

// body implements downstream.
func (st *h2Stream) body() io.Writer { return st }

// Write sends response body bytes in DATA frames, as the flow-control
// windows allow; each write is flushed unless another stream's writer is
// about to flush after it. The write that completes a body of known
// length ends the stream.
func (st *h2Stream) Write(p []byte) (int, error) {
	if st.left >= 0 && int64(len(p)) > st.left {
		return 0, fmt.Errorf("%w: body longer than its length", ErrUpstreamProtocol)
	}
	written := 0
	for len(p) > 0 {
		n, err := st.reserve(len(p))
		if err != nil {
			return written, err
		}
		end := false
		if st.left >= 0 {
			st.left -= int64(n)
			end = st.left == 0
		}
		if err := st.writeData(p[:n], end); err != nil {
			return written, err
		}
		p, written = p[n:], written+n
	}
	return written, nil
}

// writeData writes a DATA frame, after the head if it is still pending;
// a frame that ends the stream closes it before the flush, as endBody does.
func (st *h2Stream) writeData(p []byte, end bool) error {
	hc := st.hc
	hc.lockWriter()
	if err := st.errLocked(); err != nil {
		hc.unlockWriter()
		return err
	}
	if st.headPending {
		hc.writeHeaderBlock(st.id, st.head, false)
		st.headPending, st.headSent = false, true
	}
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	hc.writeFrame(http2.FrameData, flags, st.id, p)
	if end {
		st.closeLocal()
	}
	return hc.unlockStream()
}

// reserve waits until the stream and the connection may send some of
// want bytes, and takes up to a frame's worth from both windows.
func (st *h2Stream) reserve(want int) (int, error) {
	hc := st.hc
	hc.mu.Lock()
	defer hc.mu.Unlock()
	for {
		if st.err != nil {
			return 0, st.err
		}
		n := min(int64(want), int64(hc.peerMaxFrame.Load()), st.sendWin, hc.sendWin)
		if n > 0 {
			st.sendWin -= n
			hc.sendWin -= n
			return int(n), nil
		}
		st.waitingSend = true
		ok := st.waitLocked(hc.srv.WriteTimeout)
		st.waitingSend = false
		if !ok {
			return 0, fmt.Errorf("%w: client gave no flow-control window for %v", ErrDownstream, hc.srv.WriteTimeout)
		}
	}
}

// waitLocked waits on cond, for at most d; it reports false when d
// passed. hc.mu is held.
func (st *h2Stream) waitLocked(d time.Duration) bool {
	deadline := time.Now().Add(d)
	cond := &st.cond
	t := time.AfterFunc(d, func() {
		st.hc.mu.Lock()
		cond.Broadcast()
		st.hc.mu.Unlock()
	})
	cond.Wait()
	t.Stop()
	return time.Now().Before(deadline)
}

// endBody implements downstream: the stream ends with the head (no
// body), with trailers, or with an empty DATA frame.
func (st *h2Stream) endBody(trailer *h1.Header) error {
	if st.localClosed {
		return nil
	}
	var tb []byte
	if trailer != nil && trailer.Len() > 0 {
		tb = appendResponseFields(st.block[:0], trailer)
		st.block = tb
	}
	hc := st.hc
	hc.lockWriter()
	if err := st.errLocked(); err != nil {
		hc.unlockWriter()
		return err
	}
	switch {
	case st.headPending && tb == nil:
		hc.writeHeaderBlock(st.id, st.head, true)
	case st.headPending:
		hc.writeHeaderBlock(st.id, st.head, false)
		hc.writeHeaderBlock(st.id, tb, true)
	case tb != nil:
		hc.writeHeaderBlock(st.id, tb, true)
	default:
		hc.writeFrame(http2.FrameData, http2.FlagDataEndStream, st.id, nil)
	}
	st.headPending, st.headSent = false, true
	// Closed before the flush: once the client has read the stream's end,
	// a frame it sends on the stream must meet a closed stream.
	st.closeLocal()
	return hc.unlockStream()
}

// requestBody implements downstream.
func (st *h2Stream) requestBody() io.Reader {
	if st.px.req.ContentLength == 0 {
		return nil
	}
	return &st.in
}

// tunnel implements downstream: an HTTP/2 client cannot be switched to
// another protocol.
func (st *h2Stream) tunnel(r *request, uc *upstreamConn) error {
	uc.close()
	return fmt.Errorf("%w: %s answered 101 to a request from an HTTP/2 client", ErrUpstreamProtocol, uc.key.addr)
}

// h2In reads a request body from the DATA the reader buffered, giving the
// window back as it goes.
type h2In struct{ st *h2Stream }

// errBodyTimeout: the client sent no body bytes for the idle timeout. It
// is a timeout (408), as a stalled HTTP/1.1 body is.
var errBodyTimeout error = bodyStalled{}

// errBodyAbandoned ends a Read of a request body the upstream exchange no
// longer reads (abandon).
var errBodyAbandoned = errors.New("http2: request body abandoned by the upstream exchange")

// abandon makes a Read waiting for request body bytes, and every later
// one, return: the HTTP/2 transport upstream closes a request body when
// the upstream stream ends (the backend answered, reset it, or went
// away) and expects a Read in progress to end, or it would wait for the
// client's next bytes. It must be called before the stream is released.
func (in *h2In) abandon() {
	st := in.st
	hc := st.hc
	hc.mu.Lock()
	st.bodyAbandoned = true
	st.cond.Broadcast()
	hc.mu.Unlock()
}

type bodyStalled struct{}

func (bodyStalled) Error() string   { return "http2: request body stalled" }
func (bodyStalled) Timeout() bool   { return true }
func (bodyStalled) Temporary() bool { return true }

func (in *h2In) Read(p []byte) (int, error) {
	st := in.st
	hc := st.hc
	hc.mu.Lock()
	for st.roff == len(st.rbuf) && !st.remoteClosed && st.err == nil && !st.bodyAbandoned {
		if !st.waitLocked(hc.srv.IdleTimeout) {
			hc.mu.Unlock()
			return 0, errBodyTimeout
		}
	}
	if err := st.err; err != nil {
		hc.mu.Unlock()
		return 0, err
	}
	if st.bodyAbandoned {
		hc.mu.Unlock()
		return 0, errBodyAbandoned
	}
	if st.roff == len(st.rbuf) {
		hc.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, st.rbuf[st.roff:])
	st.roff += n
	if st.roff == len(st.rbuf) {
		st.rbuf, st.roff = st.rbuf[:0], 0
	}
	hc.returnCredit(st, int64(n))
	hc.mu.Unlock()
	hc.kick()
	return n, nil
}
