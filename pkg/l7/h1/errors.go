package h1

import (
	"errors"
	"fmt"
)

// Sentinel errors classify every protocol error this package returns. Each
// is wrapped in an *Error that carries the HTTP status to answer with, so
// test with errors.Is for the class and errors.As for the status.
var (
	// ErrMalformed is a message that breaks RFC 9112's syntax or framing
	// rules. A server answers 400 and, like a proxy reading a response or
	// a body, must close the connection: the message boundaries are lost.
	ErrMalformed = errors.New("h1: malformed message")
	// ErrHeaderTooLarge is a head (or trailer section) over Limits. A
	// server answers 431.
	ErrHeaderTooLarge = errors.New("h1: header section too large")
	// ErrUnsupportedTransferCoding is a Transfer-Encoding other than
	// "chunked". A server answers 501.
	ErrUnsupportedTransferCoding = errors.New("h1: unsupported transfer coding")
	// ErrUnsupportedVersion is a well-formed HTTP version other than 1.0
	// or 1.1. A server answers 505.
	ErrUnsupportedVersion = errors.New("h1: unsupported HTTP version")
	// ErrBodyUnread is returned by ReadRequest and ReadResponse when the
	// previous message's body has not been read to its end, or failed.
	// Parsing on would take body bytes for a head, which is exactly how a
	// request is smuggled, so the Reader refuses; the connection must be
	// closed or the body drained first.
	ErrBodyUnread = errors.New("h1: previous message body not fully read")
)

// Error is a protocol error: the class (one of the sentinel errors above),
// the status code a server should answer a client with, and what exactly was
// wrong. For errors reading a response the status describes the upstream's
// fault; a proxy answers its client 502 instead.
type Error struct {
	// Status is the HTTP status code to answer with: 400, 431, 501 or 505.
	Status int
	// Msg says what was wrong and quotes the offending bytes.
	Msg string
	// Err is the sentinel class, returned by Unwrap.
	Err error
}

// Error implements error.
func (e *Error) Error() string { return e.Err.Error() + ": " + e.Msg }

// Unwrap returns the sentinel class so that errors.Is works.
func (e *Error) Unwrap() error { return e.Err }

// The status codes this package's errors carry. net/http has them too, but
// importing it for four integers would link all of it into the proxy.
const (
	statusBadRequest           = 400
	statusHeaderFieldsTooLarge = 431
	statusNotImplemented       = 501
	statusVersionNotSupported  = 505
)

// maxQuoted bounds how much of an offending value an error message quotes,
// so that a hostile 32 KiB header does not become a 32 KiB log line.
const maxQuoted = 64

// quote returns b, cut to maxQuoted bytes, for use with %q in messages.
func quote(b []byte) []byte {
	if len(b) > maxQuoted {
		return b[:maxQuoted]
	}
	return b
}

// malformed returns an ErrMalformed *Error with status 400.
func malformed(format string, args ...any) error {
	return &Error{Status: statusBadRequest, Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

// tooLarge returns an ErrHeaderTooLarge *Error with status 431.
func tooLarge(format string, args ...any) error {
	return &Error{Status: statusHeaderFieldsTooLarge, Msg: fmt.Sprintf(format, args...), Err: ErrHeaderTooLarge}
}

// unsupportedCoding returns an ErrUnsupportedTransferCoding *Error with
// status 501.
func unsupportedCoding(format string, args ...any) error {
	return &Error{Status: statusNotImplemented, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupportedTransferCoding}
}

// unsupportedVersion returns an ErrUnsupportedVersion *Error with status 505.
func unsupportedVersion(format string, args ...any) error {
	return &Error{Status: statusVersionNotSupported, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupportedVersion}
}

// badByteMsg names an invalid byte; a bare CR gets its own words because it
// is the classic smuggling probe and deserves to stand out in logs.
func badByteMsg(c byte) string {
	switch c {
	case '\r':
		return "bare CR"
	case 0:
		return "NUL byte"
	}
	return fmt.Sprintf("invalid byte %q", c)
}
