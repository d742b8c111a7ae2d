package l7

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// gRPC over the proxy. A gRPC request is an HTTP/2 request whose
// content-type is application/grpc or application/grpc+… (or ;…); it
// runs the same pipeline as any other, and the proxy adds three things:
//
//   - grpc-timeout bounds the request from when its head arrived: past
//     it, the upstream stream is cancelled and the client gets
//     DEADLINE_EXCEEDED, as the answer when no response head was sent
//     yet, else as the stream's trailers. The backend is sent the time
//     left, not the client's whole timeout, so that its deadline is the
//     client's.
//   - The errors the proxy answers itself (no healthy backend, connect
//     failures, timeouts, a RequestFilter's Respond with an error status)
//     go out as a gRPC "trailers-only" response: HTTP 200, content-type
//     application/grpc, grpc-status and grpc-message, which gRPC clients
//     understand, instead of an HTTP status they would report as a
//     protocol error.
//   - A response the upstream cuts short after its head ends with
//     trailers carrying the failure's grpc-status instead of a reset.
//
// Session.Status keeps the HTTP status the error stands for (503, 504,
// 502, …), so that logs and metrics classify the fault as for any other
// request; Session.GRPCStatus holds the code that was sent.

// gRPC status codes the proxy answers with (grpc/codes).
const (
	GRPCDeadlineExceeded  = 4
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCUnimplemented     = 12
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// GRPCStatus returns the gRPC status code that stands for the HTTP error
// status httpStatus (400 or more) in the proxy's answers to gRPC
// requests: UNAVAILABLE for 502 and 503 (no healthy backend, connect
// failures, broken responses), DEADLINE_EXCEEDED for 504 (timeouts,
// grpc-timeout), UNIMPLEMENTED for 404 (no route), RESOURCE_EXHAUSTED
// for 429, UNAUTHENTICATED for 401, PERMISSION_DENIED for 403, and
// INTERNAL for any other.
func GRPCStatus(httpStatus int) int {
	switch httpStatus {
	case 502, 503:
		return GRPCUnavailable
	case 504:
		return GRPCDeadlineExceeded
	case 404:
		return GRPCUnimplemented
	case 429:
		return GRPCResourceExhausted
	case 401:
		return GRPCUnauthenticated
	case 403:
		return GRPCPermissionDenied
	}
	return GRPCInternal
}

// isGRPC reports whether req is a gRPC request: its content-type is
// application/grpc, alone or followed by + or ; (not grpc-web, which is
// framed differently).
func isGRPC(req *h1.Request) bool {
	ct, ok := req.Header.Get("Content-Type")
	const prefix = "application/grpc"
	if !ok || len(ct) < len(prefix) || !asciiEqualFold(ct[:len(prefix)], prefix) {
		return false
	}
	return len(ct) == len(prefix) || ct[len(prefix)] == '+' || ct[len(prefix)] == ';'
}

// parseGRPCTimeout parses a grpc-timeout value: at most 8 digits and a
// unit, H, M, S, m, u or n (gRPC over HTTP/2).
func parseGRPCTimeout(v []byte) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	for _, u := range grpcUnits {
		if u.name == v[len(v)-1] {
			unit = u.d
		}
	}
	if unit == 0 {
		return 0, false
	}
	if n > int64(1<<63-1)/int64(unit) {
		return 1<<63 - 1, true // 99999999H: as good as none
	}
	return time.Duration(n) * unit, true
}

// maxGRPCTimeout is the largest number a grpc-timeout value holds: 8
// digits.
const maxGRPCTimeout = 99999999

// grpcUnits are the units of a grpc-timeout value, largest first.
var grpcUnits = [...]struct {
	d    time.Duration
	name byte
}{
	{time.Hour, 'H'}, {time.Minute, 'M'}, {time.Second, 'S'},
	{time.Millisecond, 'm'}, {time.Microsecond, 'u'}, {time.Nanosecond, 'n'},
}

// appendGRPCTimeout appends d as a grpc-timeout value: in the largest
// unit that holds it exactly in 8 digits, or else in the finest unit
// that holds it at all, rounded down, so that the value never says more
// time than d. Zero or less is "0n".
func appendGRPCTimeout(dst []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(dst, "0n"...)
	}
	for _, u := range grpcUnits {
		if d%u.d == 0 && d/u.d <= maxGRPCTimeout {
			return append(strconv.AppendInt(dst, int64(d/u.d), 10), u.name)
		}
	}
	u := grpcUnits[0] // every Duration fits in hours: 2562047H at most
	for i := len(grpcUnits) - 1; i > 0; i-- {
		if d/grpcUnits[i].d <= maxGRPCTimeout {
			u = grpcUnits[i]
			break
		}
	}
	return append(strconv.AppendInt(dst, int64(d/u.d), 10), u.name)
}

// upstreamGRPCTimeout appends to dst the grpc-timeout to send upstream
// in place of v, the request's: the time left until the client's
// deadline, so that the backend's deadline is the client's rather than
// later by the time the request spent in the proxy; or v as it is when
// it says less (a filter shortened it) or the client gave no valid
// deadline.
func (r *request) upstreamGRPCTimeout(dst, v []byte) []byte {
	deadline := r.grpcDeadline()
	if deadline.IsZero() {
		return append(dst, v...)
	}
	left := time.Until(deadline)
	if d, ok := parseGRPCTimeout(v); ok && d <= left {
		return append(dst, v...)
	}
	return appendGRPCTimeout(dst, left)
}

// errGRPCDeadline ends a gRPC request whose grpc-timeout passed. It is an
// upstream timeout: the backend did not answer within the time the
// client gave it.
var errGRPCDeadline = fmt.Errorf("%w: grpc-timeout passed", ErrUpstreamTimeout)

// grpcDeadline returns when the grpc-timeout of req, which arrived at
// start, passes; zero without a valid one.
func grpcDeadline(req *h1.Request, start time.Time) time.Time {
	v, has := req.Header.Get("Grpc-Timeout")
	if !has {
		return time.Time{}
	}
	d, valid := parseGRPCTimeout(v)
	if !valid {
		return time.Time{}
	}
	return start.Add(d)
}

// grpcDeadline returns when the request's grpc-timeout passes, zero
// when it has none or is not gRPC (runStream reads it for gRPC requests
// only).
func (r *request) grpcDeadline() time.Time {
	if st, ok := r.down.(*h2Stream); ok {
		return st.grpcDeadline
	}
	return time.Time{}
}

// respondGRPC answers a gRPC request with a trailers-only response that
// carries the gRPC status standing for the HTTP status httpStatus, and
// msg (or the status's reason phrase) as grpc-message.
func (r *request) respondGRPC(httpStatus int, msg []byte) error {
	code := GRPCStatus(httpStatus)
	r.sess.Status, r.sess.GRPCStatus = httpStatus, code
	h := &r.respTrailer
	h.Reset()
	h.Set("Content-Type", "application/grpc")
	appendGRPCStatus(h, code, msg, httpStatus)
	if err := r.down.writeHead(200, nil, h, -1, true); err != nil {
		return err
	}
	return r.down.endBody(nil)
}

// endGRPC ends a gRPC response cut short after its head with trailers
// saying why, err being what cut it: a gRPC client then reports the
// failure's status (UNAVAILABLE for a backend gone, DEADLINE_EXCEEDED
// for a timeout) rather than an HTTP/2 reset. A body of known length is
// reset instead: trailers after too few bytes would be malformed.
func (r *request) endGRPC(err error) {
	if r.resp.ContentLength >= 0 || FaultOf(err) != UpstreamFault {
		return
	}
	status := statusFor(err)
	r.sess.GRPCStatus = GRPCStatus(status)
	h := &r.respTrailer
	h.Reset()
	appendGRPCStatus(h, r.sess.GRPCStatus, nil, status)
	r.down.endBody(h)
}

func appendGRPCStatus(h *h1.Header, code int, msg []byte, httpStatus int) {
	var digits [4]byte
	h.SetBytes([]byte("Grpc-Status"), strconv.AppendInt(digits[:0], int64(code), 10))
	if len(msg) == 0 {
		msg = []byte("weir: " + h1.StatusText(httpStatus))
	}
	h.SetBytes([]byte("Grpc-Message"), percentEncode(nil, msg))
}

// percentEncode encodes msg for grpc-message: bytes outside visible
// ASCII and space, and '%', as %XX.
func percentEncode(dst, msg []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range msg {
		if c < 0x20 || c > 0x7e || c == '%' {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return bytes.TrimSpace(dst)
}
