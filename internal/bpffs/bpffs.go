// Package bpffs prepares the bpf filesystem directories weir pins objects
// in.
package bpffs

import "errors"

// ErrUnsupported reports a platform without a bpf filesystem.
var ErrUnsupported = errors.New("bpffs: not supported on this platform")
