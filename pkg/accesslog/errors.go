package accesslog

import "errors"

// Errors the package returns, wrapped with the detail at fault (the
// format's offending field, the path); test with errors.Is.
var (
	// ErrBadFormat means ParseFormat could not parse a format; the
	// wrapping error says where and what to write instead.
	ErrBadFormat = errors.New("invalid access log format")
	// ErrClosed means the Writer, or the Writers set, was closed.
	ErrClosed = errors.New("access log closed")
	// ErrCloseTimeout means Close gave up on lines it could not write
	// within Options.CloseTimeout (a stalled disk, a FIFO nobody reads);
	// they count as dropped.
	ErrCloseTimeout = errors.New("access log not drained in time")
)
