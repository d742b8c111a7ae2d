// Package bpffs prepares the bpf filesystem directories weir pins objects
// in, and tells whether what is pinned there outlives weir.
package bpffs

import "errors"

// ErrUnsupported reports a platform without a bpf filesystem.
var ErrUnsupported = errors.New("bpffs: not supported on this platform")

// ErrPrivate reports a bpffs that is mounted in this process's mount
// namespace only: once the namespace ends (with the process, for the one
// `ip netns exec` creates per command), the filesystem and every object
// pinned in it go too.
var ErrPrivate = errors.New("bpffs: mounted only in this process's mount namespace")
