package l7

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/l7/h2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 server (RFC 9113), downstream: ALPN "h2" over TLS, or the
// prior-knowledge preface on a plain connection.
//
// The connection's own goroutine reads frames and keeps the connection's
// state. Each request runs on a goroutine of its own through the same
// pipeline as HTTP/1.1 (request.go), with an h2Stream as its downstream,
// and its head is decoded straight into the pipeline's h1.Request. Streams
// write their frames themselves, under a mutex, into one buffer; whichever
// writer finds no other waiting flushes it, so the responses of concurrent
// streams leave in shared writes, with no goroutine or channel between a
// stream and the socket. The reader never waits for that mutex: the frames
// it owes the client (acknowledgements, WINDOW_UPDATE, RST_STREAM,
// GOAWAY) go to a queue that the mutex's holder writes out.
//
// golang.org/x/net/http2 parses frames (Framer) and decodes HPACK; the
// HPACK encoder, the frame writing and the decoding of request heads into
// h1 types are weir's own (package h2).

// Settings the server announces.
const (
	// h2MaxStreams is SETTINGS_MAX_CONCURRENT_STREAMS.
	h2MaxStreams = 256
	// h2StreamWindow is SETTINGS_INITIAL_WINDOW_SIZE: how much of a
	// request body a client may send ahead of the upstream reading it.
	h2StreamWindow = 256 << 10
	// h2ConnWindow is the connection's receive window. It bounds the
	// request body bytes a connection buffers, whatever its streams do.
	h2ConnWindow = 1 << 20
	// h2MaxRunning bounds the streams whose requests are still being
	// served, open or already reset by the client. A client that resets
	// streams as fast as it opens them (CVE-2023-44487) meets it.
	h2MaxRunning = 2 * h2MaxStreams
	// h2MaxControl bounds the queue of frames owed to a client that does
	// not read them (a PING or SETTINGS flood).
	h2MaxControl = 64 << 10
	// h2MaxFrameOut caps the DATA frames sent, whatever the client allows.
	h2MaxFrameOut = 16 << 10
)

// h2Conn is one downstream HTTP/2 connection.
type h2Conn struct {
	srv    *Server
	nc     net.Conn
	remote netip.AddrPort
	tls    *tls.ConnectionState
	// ann is the downstream connection's, for its streams' requests.
	ann *announcer
	br  *bufio.Reader
	fr  *http2.Framer
	dec *hpack.Decoder
	// hb is the header block being decoded (reader only).
	hb headerBlock
	// gotSettings: the client's preface SETTINGS arrived (reader only).
	gotSettings bool

	// The write side. writers counts the goroutines holding or waiting
	// for wmu, so that a writer can tell whether another will flush after
	// it.
	wmu       sync.Mutex
	writers   atomic.Int32
	bw        *bufio.Writer
	werr      error
	wdeadline time.Time
	scratch   []byte
	// tableSize is the client's SETTINGS_HEADER_TABLE_SIZE when it
	// changed (tableChanged), for the next header block to acknowledge.
	tableSize    atomic.Uint32
	tableChanged atomic.Bool
	peerMaxFrame atomic.Int32

	// ctrl holds encoded frames for the next holder of wmu to write.
	cmu        sync.Mutex
	ctrl       []byte
	ctrlQueued atomic.Bool

	// mu guards the streams and the flow-control windows.
	mu      sync.Mutex
	streams map[uint32]*h2Stream
	// lastID is the highest stream the client opened.
	lastID uint32
	// running counts the streams whose requests are being served.
	running int
	// sendWin is the connection's send window; recvWin what remains of
	// the receive window announced; credit the bytes consumed since the
	// last WINDOW_UPDATE.
	sendWin, recvWin, credit int64
	// peerInitWin is the client's SETTINGS_INITIAL_WINDOW_SIZE.
	peerInitWin int64
	// goAwayID is the last stream accepted once a GOAWAY was sent
	// (goingAway); peerGoAway says the client sent one.
	goingAway, peerGoAway bool
	goAwayID              uint32
	closed                bool
	// resetIDs remembers the last streams this side reset, whose DATA
	// may still be on its way and is then dropped silently.
	resetIDs [16]uint32
	resetPos int
	wg       sync.WaitGroup
}

// h2Error is a connection error: the code goes out in a GOAWAY.
type h2Error struct {
	code http2.ErrCode
	msg  string
}

func (e *h2Error) Error() string { return "http2: " + e.code.String() + ": " + e.msg }

func connErr(code http2.ErrCode, format string, args ...any) error {
	return &h2Error{code: code, msg: fmt.Sprintf(format, args...)}
}

var (
	errStreamReset = errors.New("http2: stream reset by the client")
	errStreamGone  = errors.New("http2: stream ended by the proxy")
	errH2Closed    = errors.New("http2: connection closed")
)

var (
	h2ReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	h2WriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
)

// serveH2 serves the HTTP/2 connection c until it ends. Bytes c's reader
// already holds (the h2c preface) are read first.
func (s *Server) serveH2(c *conn) {
	c.idle.Store(false) // Shutdown ends it with GOAWAY, not by closing it
	c.c.SetDeadline(time.Time{})
	var pre []byte
	if n := c.r.Buffered(); n > 0 {
		pre = make([]byte, n)
		io.ReadFull(c.r, pre)
	}
	c.r.Release()
	hc := &h2Conn{srv: s, nc: c.c, remote: c.remote, tls: c.tls, ann: c.announcer()}
	s.trackH2(hc, true)
	defer s.trackH2(hc, false)
	hc.serve(pre)
}

// h2Source reads the bytes that came before the HTTP/2 connection was
// handed over, then the connection.
type h2Source struct {
	pre []byte
	nc  net.Conn
}

func (s *h2Source) Read(p []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.nc.Read(p)
}

func (hc *h2Conn) init(pre []byte) {
	hc.br = h2ReaderPool.Get().(*bufio.Reader)
	hc.br.Reset(&h2Source{pre: pre, nc: hc.nc})
	hc.bw = h2WriterPool.Get().(*bufio.Writer)
	hc.bw.Reset(hc.nc)
	hc.fr = http2.NewFramer(nil, hc.br)
	hc.fr.SetReuseFrames()
	hc.fr.SetMaxReadFrameSize(16 << 10)
	hc.hb.MaxBytes, hc.hb.MaxFields = hc.srv.Limits.MaxHeaderBytes, hc.srv.Limits.MaxHeaders
	if hc.hb.MaxBytes <= 0 {
		hc.hb.MaxBytes = h1.DefaultMaxHeaderBytes
	}
	if hc.hb.MaxFields <= 0 {
		hc.hb.MaxFields = h1.DefaultMaxHeaders
	}
	hc.dec = hpack.NewDecoder(4096, hc.hb.Field)
	// A string longer than the limit must not stop the decoder (which
	// would end the connection with COMPRESSION_ERROR): the block is
	// decoded to its end and answered 431 (RequestDecoder.TooLarge). A
	// string can be no longer than the block, which decodeFragment
	// bounds, times 8/5 for Huffman coding.
	hc.dec.SetMaxStringLength(2 * (2*hc.hb.MaxBytes + 64<<10))
	hc.streams = make(map[uint32]*h2Stream)
	hc.sendWin, hc.recvWin, hc.peerInitWin = 65535, h2ConnWindow, 65535
	hc.peerMaxFrame.Store(16 << 10)
}

// serve reads and handles frames until the connection ends.
func (hc *h2Conn) serve(pre []byte) {
	hc.init(pre)
	defer hc.finish()
	hc.nc.SetReadDeadline(time.Now().Add(hc.srv.HeaderTimeout))
	if err := hc.readPreface(); err != nil {
		hc.srv.Logger.Debug("http2 preface", "service", hc.srv.Name, "client", hc.remote, "err", err)
		return
	}
	if err := hc.writeSettings(); err != nil {
		return
	}
	for {
		f, err := hc.fr.ReadFrame()
		if err == nil {
			err = hc.handle(f)
		}
		hc.kick()
		if err != nil && !hc.streamError(err) {
			hc.end(err)
			return
		}
	}
}

func (hc *h2Conn) readPreface() error {
	var got [24]byte
	if _, err := io.ReadFull(hc.br, got[:]); err != nil {
		return err
	}
	if string(got[:]) != string(h2Preface) {
		return errors.New("not the HTTP/2 client preface")
	}
	return nil
}

// writeSettings sends the server's preface: its SETTINGS, and the
// connection window beyond the 64 KiB every connection starts with.
func (hc *h2Conn) writeSettings() error {
	var b [9 + 4*6 + 9 + 4]byte
	p := h2.AppendFrameHeader(b[:0], 3*6, http2.FrameSettings, 0, 0)
	p = h2.AppendSetting(p, http2.SettingMaxConcurrentStreams, h2MaxStreams)
	p = h2.AppendSetting(p, http2.SettingInitialWindowSize, h2StreamWindow)
	p = h2.AppendSetting(p, http2.SettingMaxHeaderListSize, uint32(hc.hb.MaxBytes))
	p = h2.AppendFrameHeader(p, 4, http2.FrameWindowUpdate, 0, 0)
	p = binary.BigEndian.AppendUint32(p, h2ConnWindow-65535)
	hc.lockWriter()
	hc.writeRaw(p)
	return hc.unlockWriter()
}

// handle acts on one frame. A returned *h2Error ends the connection, an
// http2.StreamError one stream.
func (hc *h2Conn) handle(f http2.Frame) error {
	if !hc.gotSettings {
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			return connErr(http2.ErrCodeProtocol, "client preface must end with SETTINGS")
		}
		hc.gotSettings = true
		hc.idleIfNoStreams()
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return hc.onSettings(f)
	case *http2.HeadersFrame:
		return hc.onHeaders(f)
	case *http2.ContinuationFrame:
		return hc.onContinuation(f)
	case *http2.DataFrame:
		return hc.onData(f)
	case *http2.WindowUpdateFrame:
		return hc.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			var b [9 + 8]byte
			hc.queue(append(h2.AppendFrameHeader(b[:0], 8, http2.FramePing, http2.FlagPingAck, 0), f.Data[:]...))
		}
		return nil
	case *http2.RSTStreamFrame:
		return hc.onReset(f)
	case *http2.GoAwayFrame:
		hc.mu.Lock()
		hc.peerGoAway = true
		hc.mu.Unlock()
		hc.idleIfNoStreams()
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.PushPromiseFrame:
		return connErr(http2.ErrCodeProtocol, "PUSH_PROMISE from a client")
	}
	return nil // unknown frame types are ignored (RFC 9113 §4.1)
}

func (hc *h2Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce http2.ConnectionError
			errors.As(err, &ce)
			return connErr(http2.ErrCode(ce), "bad setting %v", s)
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			hc.tableSize.Store(min(s.Val, 4096))
			hc.tableChanged.Store(true)
		case http2.SettingInitialWindowSize:
			return hc.setPeerWindow(int64(s.Val))
		case http2.SettingMaxFrameSize:
			hc.peerMaxFrame.Store(int32(min(s.Val, h2MaxFrameOut)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	var b [9]byte
	hc.queue(h2.AppendFrameHeader(b[:0], 0, http2.FrameSettings, http2.FlagSettingsAck, 0))
	return nil
}

// setPeerWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE to every open
// stream's send window (RFC 9113 §6.9.2).
func (hc *h2Conn) setPeerWindow(v int64) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	delta := v - hc.peerInitWin
	hc.peerInitWin = v
	for _, st := range hc.streams {
		st.sendWin += delta
		if st.sendWin > 1<<31-1 {
			return connErr(http2.ErrCodeFlowControl, "window of stream %d overflows", st.id)
		}
		st.cond.Broadcast()
	}
	return nil
}

func (hc *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		hc.sendWin += inc
		if hc.sendWin > 1<<31-1 {
			return connErr(http2.ErrCodeFlowControl, "connection window overflows")
		}
		for _, st := range hc.streams {
			if st.waitingSend {
				st.cond.Broadcast()
			}
		}
		return nil
	}
	if f.StreamID > hc.lastID {
		return connErr(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream %d", f.StreamID)
	}
	st := hc.streams[f.StreamID]
	if st == nil {
		return nil // closed: a late update is no error
	}
	st.sendWin += inc
	if st.sendWin > 1<<31-1 {
		hc.resetLocked(st, http2.ErrCodeFlowControl)
		return nil
	}
	st.cond.Broadcast()
	return nil
}

func (hc *h2Conn) onReset(f *http2.RSTStreamFrame) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if f.StreamID > hc.lastID {
		return connErr(http2.ErrCodeProtocol, "RST_STREAM on idle stream %d", f.StreamID)
	}
	if st := hc.streams[f.StreamID]; st != nil {
		st.fail(errStreamReset)
		delete(hc.streams, st.id)
	}
	return nil
}

func (hc *h2Conn) onData(f *http2.DataFrame) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	id, n := f.StreamID, int64(f.Length)
	if id > hc.lastID {
		return connErr(http2.ErrCodeProtocol, "DATA on idle stream %d", id)
	}
	if n > hc.recvWin {
		return connErr(http2.ErrCodeFlowControl, "DATA beyond the connection window")
	}
	hc.recvWin -= n
	st := hc.streams[id]
	if st == nil || st.remoteClosed {
		hc.returnCredit(nil, n)
		if st != nil {
			hc.resetLocked(st, http2.ErrCodeStreamClosed)
		} else if !hc.wasReset(id) {
			hc.queueReset(id, http2.ErrCodeStreamClosed)
		}
		return nil
	}
	if n > st.recvWin {
		hc.returnCredit(nil, n)
		hc.resetLocked(st, http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWin -= n
	data := f.Data()
	st.received += int64(len(data))
	if st.declared >= 0 && (st.received > st.declared || f.StreamEnded() && st.received != st.declared) {
		hc.returnCredit(nil, n)
		hc.resetLocked(st, http2.ErrCodeProtocol)
		return nil
	}
	// Padding is consumed at once; the data when the body is read.
	hc.returnCredit(st, n-int64(len(data)))
	st.rbuf = append(st.rbuf, data...)
	if f.StreamEnded() {
		hc.closeRemoteLocked(st)
	}
	st.cond.Broadcast()
	return nil
}

// returnCredit gives back n consumed bytes of receive window, for st too
// when not nil, in WINDOW_UPDATEs once half a window is owed: fewer
// frames than one per read, and the client never waits on them.
func (hc *h2Conn) returnCredit(st *h2Stream, n int64) {
	if n <= 0 {
		return
	}
	hc.credit += n
	if hc.credit >= h2ConnWindow/2 {
		hc.queueWindowUpdate(0, hc.credit)
		hc.recvWin += hc.credit
		hc.credit = 0
	}
	if st == nil || st.remoteClosed {
		return
	}
	st.credit += n
	if st.credit >= h2StreamWindow/2 {
		hc.queueWindowUpdate(st.id, st.credit)
		st.recvWin += st.credit
		st.credit = 0
	}
}

// closeRemoteLocked records that the client finished sending on st.
func (hc *h2Conn) closeRemoteLocked(st *h2Stream) {
	st.remoteClosed = true
	if st.localClosed {
		delete(hc.streams, st.id)
	}
}

// resetLocked resets st with code: the client is told, the stream's
// goroutine meets errStreamGone at its next read or write.
func (hc *h2Conn) resetLocked(st *h2Stream, code http2.ErrCode) {
	if st.err == nil {
		st.fail(errStreamGone)
		hc.queueReset(st.id, code)
	}
	delete(hc.streams, st.id)
}

func (hc *h2Conn) queueReset(id uint32, code http2.ErrCode) {
	hc.resetIDs[hc.resetPos%len(hc.resetIDs)] = id
	hc.resetPos++
	var b [9 + 4]byte
	hc.queue(binary.BigEndian.AppendUint32(h2.AppendFrameHeader(b[:0], 4, http2.FrameRSTStream, 0, id), uint32(code)))
}

func (hc *h2Conn) wasReset(id uint32) bool {
	for _, r := range hc.resetIDs {
		if r == id {
			return true
		}
	}
	return false
}

func (hc *h2Conn) queueWindowUpdate(id uint32, n int64) {
	var b [9 + 4]byte
	hc.queue(binary.BigEndian.AppendUint32(h2.AppendFrameHeader(b[:0], 4, http2.FrameWindowUpdate, 0, id), uint32(n)))
}

// streamError answers a stream error with RST_STREAM and reports whether
// the connection goes on.
func (hc *h2Conn) streamError(err error) bool {
	var se http2.StreamError
	if !errors.As(err, &se) {
		return false
	}
	hc.mu.Lock()
	if st := hc.streams[se.StreamID]; st != nil {
		hc.resetLocked(st, se.Code)
	} else {
		hc.queueReset(se.StreamID, se.Code)
	}
	hc.mu.Unlock()
	hc.kick()
	return true
}

// end reacts to the error that ended the reading: a GOAWAY with its code
// for a protocol error; a timeout is the idle timeout or the end of a
// graceful shutdown.
func (hc *h2Conn) end(err error) {
	var he *h2Error
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &ce):
		detail := hc.fr.ErrorDetail()
		if detail == nil {
			detail = err
		}
		he = &h2Error{code: http2.ErrCode(ce), msg: detail.Error()}
	case errors.Is(err, http2.ErrFrameTooLarge):
		he = &h2Error{code: http2.ErrCodeFrameSize, msg: err.Error()}
	case isTimeout(err):
		hc.goAway(http2.ErrCodeNo)
		return
	default:
		return // the client went away
	}
	hc.srv.Logger.Debug("http2 connection error", "service", hc.srv.Name, "client", hc.remote, "err", he)
	hc.goAway(he.code)
}

// goAway queues a GOAWAY naming the last stream this side will serve.
func (hc *h2Conn) goAway(code http2.ErrCode) {
	hc.mu.Lock()
	if hc.goingAway && code == http2.ErrCodeNo {
		hc.mu.Unlock()
		return
	}
	hc.goingAway, hc.goAwayID = true, hc.lastID
	var b [9 + 8]byte
	p := h2.AppendFrameHeader(b[:0], 8, http2.FrameGoAway, 0, 0)
	p = binary.BigEndian.AppendUint32(p, hc.lastID)
	hc.queue(binary.BigEndian.AppendUint32(p, uint32(code)))
	hc.mu.Unlock()
	hc.kick()
}

// shutdown starts a graceful close for Server.Shutdown: streams in flight
// finish, no new one is taken, and the connection closes when none is left.
func (hc *h2Conn) shutdown() {
	hc.goAway(http2.ErrCodeNo)
	hc.idleIfNoStreams()
}

// idleIfNoStreams arms the read deadline of a connection without
// requests in flight: the idle timeout, or at once when going away.
func (hc *h2Conn) idleIfNoStreams() {
	hc.mu.Lock()
	hc.setIdleDeadlineLocked()
	hc.mu.Unlock()
}

func (hc *h2Conn) setIdleDeadlineLocked() {
	if hc.running > 0 || !hc.gotSettings {
		return
	}
	if hc.goingAway || hc.peerGoAway {
		hc.nc.SetReadDeadline(time.Now())
		return
	}
	hc.nc.SetReadDeadline(hc.srv.idleDeadline(time.Now()))
}

// finish ends the connection once reading stopped: streams still running
// fail at their next read or write, the GOAWAY (if any) goes out, and
// the goroutine waits for the streams before giving back the buffers.
func (hc *h2Conn) finish() {
	hc.mu.Lock()
	hc.closed = true
	for id, st := range hc.streams {
		st.fail(errH2Closed)
		delete(hc.streams, id)
	}
	sentGoAway := hc.goingAway
	hc.mu.Unlock()
	// A stream may hold the writer, even blocked on a slow client: the
	// deadline bounds its wait and ours, and the GOAWAY still goes out.
	hc.nc.SetWriteDeadline(time.Now().Add(time.Second))
	hc.wmu.Lock()
	hc.drainControl()
	flushed := hc.werr == nil && hc.bw.Flush() == nil
	hc.werr = errH2Closed
	hc.wmu.Unlock()
	if sentGoAway && flushed {
		lingerClose(hc.nc)
	}
	hc.nc.Close()
	hc.wg.Wait()
	hc.br.Reset(nil)
	h2ReaderPool.Put(hc.br)
	hc.wmu.Lock()
	hc.bw.Reset(nil)
	h2WriterPool.Put(hc.bw)
	hc.bw, hc.werr = nil, errH2Closed
	hc.wmu.Unlock()
}

// queue adds an encoded frame for the next writer to send.
func (hc *h2Conn) queue(frame []byte) {
	hc.cmu.Lock()
	if len(hc.ctrl) < h2MaxControl {
		hc.ctrl = append(hc.ctrl, frame...)
	}
	hc.cmu.Unlock()
	hc.ctrlQueued.Store(true)
}

// kick writes the queued frames now if no writer holds the mutex; one
// that does writes them before letting go.
func (hc *h2Conn) kick() {
	if !hc.ctrlQueued.Load() || !hc.wmu.TryLock() {
		return
	}
	hc.setWriteDeadline()
	hc.unlockWriter()
}

func (hc *h2Conn) drainControl() {
	if !hc.ctrlQueued.Swap(false) {
		return
	}
	hc.cmu.Lock()
	if hc.werr == nil {
		hc.writeRaw(hc.ctrl)
	}
	hc.ctrl = hc.ctrl[:0]
	hc.cmu.Unlock()
}

// lockWriter takes the write mutex.
func (hc *h2Conn) lockWriter() {
	hc.writers.Add(1)
	hc.wmu.Lock()
	hc.writers.Add(-1)
	hc.setWriteDeadline()
}

// setWriteDeadline keeps the write deadline at least half the write
// timeout away, re-arming it only when it came closer: a timer change for
// every frame would cost more than the frame.
func (hc *h2Conn) setWriteDeadline() {
	now := time.Now()
	if hc.wdeadline.Sub(now) < hc.srv.WriteTimeout/2 {
		hc.wdeadline = now.Add(hc.srv.WriteTimeout)
		hc.nc.SetWriteDeadline(hc.wdeadline)
	}
}

// unlockWriter writes the queued control frames, flushes unless another
// writer is waiting (the last one flushes for all), and lets go of the
// mutex. A control frame queued meanwhile is written by a second pass.
func (hc *h2Conn) unlockWriter() error {
	for {
		hc.drainControl()
		if hc.werr == nil && hc.writers.Load() == 0 {
			if err := hc.bw.Flush(); err != nil {
				hc.writeFailed(err)
			}
		}
		err := hc.werr
		hc.wmu.Unlock()
		if !hc.ctrlQueued.Load() || !hc.wmu.TryLock() {
			return err
		}
	}
}

// unlockStream is unlockWriter after a stream's frames. When no other
// writer waits, the flush waits for the other goroutines ready to run
// first: streams whose upstreams answered in the same poll, whose frames
// then share the write (and, over TLS, the record).
func (hc *h2Conn) unlockStream() error {
	if hc.writers.Load() > 0 || hc.werr != nil {
		hc.drainControl()
		err := hc.werr
		hc.wmu.Unlock()
		return err
	}
	hc.wmu.Unlock()
	runtime.Gosched()
	hc.lockWriter()
	return hc.unlockWriter()
}

func (hc *h2Conn) writeFailed(err error) {
	if hc.werr == nil {
		hc.werr = err
		hc.nc.Close() // the reader ends too
	}
}

func (hc *h2Conn) writeRaw(p []byte) {
	if hc.werr != nil {
		return
	}
	if _, err := hc.bw.Write(p); err != nil {
		hc.writeFailed(err)
	}
}

// writeFrame writes a frame header and its payload; wmu is held.
func (hc *h2Conn) writeFrame(t http2.FrameType, flags http2.Flags, id uint32, payload []byte) {
	if hc.werr != nil {
		return
	}
	hc.writeRaw(h2.AppendFrameHeader(hc.bw.AvailableBuffer(), len(payload), t, flags, id))
	hc.writeRaw(payload)
}

// writeHeaderBlock writes a header block as HEADERS and, when it is
// larger than a frame, CONTINUATION frames; wmu is held.
func (hc *h2Conn) writeHeaderBlock(id uint32, block []byte, endStream bool) {
	if hc.tableChanged.Swap(false) {
		hc.scratch = h2.AppendTableSizeUpdate(hc.scratch[:0], hc.tableSize.Load())
		block = append(hc.scratch, block...)
		hc.scratch = block[:0]
	}
	max := int(hc.peerMaxFrame.Load())
	for first := true; first || len(block) > 0; first = false {
		t, flags, frag, rest := h2.NextHeaderFrame(block, max, first, endStream)
		hc.writeFrame(t, flags, id, frag)
		block = rest
	}
}
