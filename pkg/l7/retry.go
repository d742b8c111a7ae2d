package l7

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
)

// Retries by policy (Peer.Retry). A request whose first peer has a
// policy is tried again when an attempt fails in a way the policy names,
// the policy grants another try, the request is still safe to send again,
// and the policy's budget lets a retry start. Without a policy the older
// rule holds: connection failures only, Session.MaxRetries times.
//
// Safe to send again means: nothing of a response has reached the client
// (no head, no interim response), and either the request never left
// (a connection that could not be opened) or its method is idempotent
// and its body is empty or was kept whole (replayBody).

// maxKeptBody is the largest request body kept for a retry. A longer
// body still streams to the upstream as it arrives; the request is then
// not retried once it was sent.
const maxKeptBody = 64 << 10

// keptBodies holds the replayBodies that keep request bodies for
// retries, with their buffers.
var keptBodies = sync.Pool{New: func() any { return new(replayBody) }}

// errRetried ends an attempt whose response (a status the policy
// retries) was discarded: the next attempt is chosen (retryState.next).
var errRetried = errors.New("response discarded for a retry")

// retryState is a request's retry bookkeeping under a policy.
type retryState struct {
	// policy governs the request: its first peer's; nil without one.
	// Once set, the request counts among its budget's active ones.
	policy *retry.Policy
	// slot says the attempt under way holds a budget retry slot.
	slot bool
	// next is the peer of the next attempt, chosen when the retry was
	// granted (a retry is granted only when there is a peer to go to);
	// nextReason is why.
	next       *Peer
	nextReason retry.Reason
	// nextSlot is the backend slot (max_connections) taken for next,
	// set aside until its attempt starts (nextPeer), so that the failed
	// attempt's end does not free it.
	nextSlot *lb.Backend
	// reason is why the attempt under way failed, as far as the policy
	// is concerned; None when it did not fail in a way a policy names.
	reason retry.Reason
	// interim says an interim (1xx) response reached the client: the
	// request is then no longer retried.
	interim bool
	// stale counts the resends after stale pooled connections, which
	// are not tries of the policy's.
	stale int
	// body keeps the request body for another attempt; nil until the
	// request's body is first read under a policy that keeps it.
	body *replayBody
	// lost says the body was read by a reader this request no longer
	// controls (an HTTP/2 transport that did not let go in time): it
	// cannot be sent again.
	lost bool
}

// startRetry makes the policy of the request's first peer govern it.
func (r *request) startRetry(pol *retry.Policy) {
	rs := &r.retry
	if rs.policy != nil || pol == nil {
		return
	}
	rs.policy = pol
	if pol.Budget != nil {
		pol.Budget.Start()
	}
}

// finishRetry gives back what the request held of its policy's budget
// and of the body buffers.
func (r *request) finishRetry() {
	rs := &r.retry
	if rs.policy != nil && rs.policy.Budget != nil {
		r.releaseSlot()
		rs.policy.Budget.Done()
	}
	if rs.body != nil {
		rs.body.release()
	}
	if rs.nextSlot != nil {
		// A retry granted but never made.
		rs.nextSlot.FreeSlot()
	}
	*rs = retryState{}
}

func (r *request) releaseSlot() {
	if r.retry.slot {
		r.retry.slot = false
		r.retry.policy.Budget.Release()
	}
}

// perTryTimeout bounds the wait for the response head: the read timeout,
// or the policy's per-try timeout when shorter.
func (r *request) perTryTimeout(read time.Duration) time.Duration {
	if pol := r.retry.policy; pol != nil && pol.PerTryTimeout > 0 && pol.PerTryTimeout < read {
		return pol.PerTryTimeout
	}
	return read
}

// tries counts the request's tries so far, as a policy's attempts do.
func (r *request) tries() int { return r.sess.Attempts - r.retry.stale }

// resendable reports whether the request, sent already, may be sent
// again.
func (r *request) resendable() bool {
	if r.sess.Status != 0 || r.retry.interim || !idempotent(r.req.Method) {
		return false
	}
	hasBody := r.req.ContentLength > 0 || r.req.Chunked
	return !hasBody || !r.retry.lost && (r.retry.body == nil || !r.retry.body.over)
}

// retryStatus decides, once a response head with status arrived, whether
// to discard it and try again (having chosen where).
func (r *request) retryStatus(status int) bool {
	pol := r.retry.policy
	if pol == nil {
		return false
	}
	reason := retry.ForStatus(status)
	return pol.Retries(reason, r.tries()) && r.resendable() && r.grantRetry(reason)
}

// retryFailure decides, after an attempt failed with err, whether to try
// again (having chosen where).
func (r *request) retryFailure(reason retry.Reason, peer *Peer, err error) bool {
	pol := r.retry.policy
	if !pol.Retries(reason, r.tries()) {
		return false
	}
	if reason == retry.Connect {
		// Nothing was sent: any method may go elsewhere.
		if f, ok := r.srv.Proxy.(FailToConnect); ok && !f.FailToConnect(&r.sess, peer, err) {
			return false
		}
	} else if !r.resendable() {
		return false
	}
	return r.grantRetry(reason)
}

// grantRetry asks the budget for a retry and chooses the peer it goes to:
// one not tried yet when there is one, else any the Proxy offers. A
// retry with nowhere to go is not granted: the failure at hand stands.
func (r *request) grantRetry(reason retry.Reason) bool {
	rs := &r.retry
	s := &r.sess
	if b := rs.policy.Budget; b != nil {
		// The failed attempt's slot, if it was a retry, is free now.
		r.releaseSlot()
		if !b.Acquire() {
			// Counted, not logged: in an outage every request may
			// land here.
			rs.policy.Refused()
			s.RetryDenied = true
			return false
		}
		rs.slot = true
	}
	// The failed attempt's backend slot goes back first: the next peer
	// takes its own, and a pool whose backends are all full must not
	// make the retry wait on the slot it holds itself.
	s.freeSlot()
	next, err := r.srv.Proxy.UpstreamPeer(s)
	if err != nil && len(s.Tried) > 0 {
		tried := s.Tried
		s.Tried = nil
		next, err = r.srv.Proxy.UpstreamPeer(s)
		s.Tried = tried
	}
	if err != nil {
		r.releaseSlot()
		return false
	}
	rs.next, rs.nextReason = next, reason
	rs.nextSlot, s.slot = s.slot, nil
	if lg := r.srv.Logger; lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.Debug("retrying the request", "service", r.srv.Name, "reason", reason.String(), "tries", r.tries(),
			"next", next.Addr, "request_id", string(s.RequestID))
	}
	return true
}

// nextPeer returns the peer a granted retry goes to, counting the retry,
// or asks the Proxy for one.
func (r *request) nextPeer() (*Peer, error) {
	rs := &r.retry
	if rs.next == nil {
		return r.srv.Proxy.UpstreamPeer(&r.sess)
	}
	peer := rs.next
	rs.next = nil
	r.sess.slot, rs.nextSlot = rs.nextSlot, nil
	rs.policy.Counted(rs.nextReason)
	r.sess.Retries[rs.nextReason]++
	return peer, nil
}

// requestBody returns the request body for this attempt: the client's,
// through a replayBody that keeps it when the request may be retried
// after it was sent (a policy that retries more than connection
// failures, an idempotent method), replayed from the start on every
// attempt after the first.
func (r *request) requestBody() io.Reader {
	rs := &r.retry
	if rs.body != nil {
		rs.body.rewind()
		return rs.body
	}
	src := r.limitBody(r.down.requestBody())
	if src == nil || rs.lost || rs.policy == nil || rs.policy.On&^retry.Of(retry.Connect) == 0 || !idempotent(r.req.Method) {
		return src
	}
	rs.body = keptBodies.Get().(*replayBody)
	rs.body.src = src
	return rs.body
}

// countBody adds n body bytes sent upstream to Session.BytesReceived,
// which counts what came from the client: a replayed body's bytes once.
func (r *request) countBody(n int64) {
	if r.retry.body != nil {
		r.sess.BytesReceived = r.retry.body.fresh
		return
	}
	r.sess.BytesReceived += n
}

// reclaimWait bounds the wait for an HTTP/2 transport's Read of a kept
// body to return once its exchange has ended. A Read blocked on a slow
// client may not return for long; the body is then given up rather than
// the request held.
const reclaimWait = 100 * time.Millisecond

// reclaim takes the kept body back from the HTTP/2 transport that was
// sending it, once its exchange has ended: the body is the request's
// alone again when no Read is in progress or the one in progress ends
// soon; else it is given up (letGo).
func (r *request) reclaim(b *h2ReqBody) {
	select {
	case <-b.turn:
	default:
		t := time.NewTimer(reclaimWait)
		defer t.Stop()
		select {
		case <-b.turn:
		case <-t.C:
			r.letGo()
			return
		}
	}
	if rb := r.retry.body; !rb.eof {
		if _, ok := rb.src.(interface{ abandon() }); ok {
			// An HTTP/2 client's body, abandoned midway, cannot
			// be read on: what is kept is not all of it.
			rb.over = true
		}
	}
}

// letGo gives up the replayBody, which a reader this request no longer
// controls may still use: it is not reused, and the body cannot be sent
// again.
func (r *request) letGo() {
	r.retry.body = nil
	r.retry.lost = true
}

// replayBody reads the client's request body and keeps what it read, up
// to maxKeptBody, so that another attempt can send it again from the
// start. Bytes flow as they arrive: each Read passes on what the client
// sent at once, and the copy is kept on the side. replayBodies, and their
// buffers, are pooled.
type replayBody struct {
	src io.Reader
	// buf holds the bytes read from src so far (made at the first byte,
	// kept through the pool); off is how far this attempt has read of
	// them.
	buf []byte
	off int
	// fresh counts the bytes read from src.
	fresh int64
	// eof says src has ended.
	eof bool
	// over says the body outgrew buf, or was cut off (an HTTP/2
	// client's abandoned midway): it cannot be sent again.
	over bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.off < len(b.buf) {
		n := copy(p, b.buf[b.off:])
		b.off += n
		return n, nil
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	b.fresh += int64(n)
	if n > 0 && !b.over {
		b.keep(p[:n])
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *replayBody) keep(p []byte) {
	if len(b.buf)+len(p) > maxKeptBody {
		b.over = true
		return
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, maxKeptBody)
	}
	b.buf = append(b.buf, p...)
	b.off = len(b.buf)
}

// rewind starts the body over for another attempt.
func (b *replayBody) rewind() { b.off = 0 }

// abandon passes an HTTP/2 transport's abandon on to the client's body
// (see h2ReqBody.abandon).
func (b *replayBody) abandon() {
	if a, ok := b.src.(interface{ abandon() }); ok {
		a.abandon()
	}
}

// release returns b, and its buffer, to the pool.
func (b *replayBody) release() {
	*b = replayBody{buf: b.buf[:0]}
	keptBodies.Put(b)
}

// discard disposes of a response the request will not relay: its
// connection goes back to the pool when the whole body is already in
// the read buffer (a short error page usually is), else it is closed.
func (r *request) discard(uc *upstreamConn) {
	resp := &r.resp
	n := resp.ContentLength
	if r.noBody(resp.Status) {
		n = 0
	}
	if !resp.KeepAlive || resp.Chunked || n < 0 || n > smallBody || int64(uc.r.Buffered()) < n {
		uc.close()
		return
	}
	body := uc.r.BodyLength(n)
	if _, err := io.ReadFull(body, r.small[:n]); err != nil || r.abort.unwatch() != nil {
		uc.close()
		return
	}
	if !body.Done() {
		var one [1]byte
		if k, err := body.Read(one[:]); k != 0 || err != io.EOF {
			uc.close()
			return
		}
	}
	r.srv.Pool.put(uc)
}

// failureReason names the failure err, which ended an attempt before a
// response head arrived, in a policy's terms: Timeout when the upstream
// took too long, Reset when it ended the exchange and nothing of an
// answer had arrived (nothing), else None: the client's fault or the
// proxy's, or a malformed answer, are not retried.
func failureReason(err error, nothing bool) retry.Reason {
	switch {
	case errors.Is(err, ErrDownstream) || errors.Is(err, ErrFilter) || errors.Is(err, errGRPCDeadline):
		return retry.None
	case errors.Is(err, ErrUpstreamTimeout) || isTimeout(err):
		return retry.Timeout
	case nothing:
		return retry.Reset
	}
	return retry.None
}
