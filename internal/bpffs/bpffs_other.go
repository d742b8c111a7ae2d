//go:build !linux

package bpffs

// Ensure fails: only Linux has a bpf filesystem.
func Ensure(dir string) error { return ErrUnsupported }

// On reports false: only Linux has a bpf filesystem.
func On(path string) bool { return false }

// Persistent fails: only Linux has a bpf filesystem.
func Persistent(path string) error { return ErrUnsupported }
