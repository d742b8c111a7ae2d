package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseFDLimit sets the soft RLIMIT_NOFILE to the hard limit, as HAProxy
// does at start: a proxy holds two descriptors a proxied connection, and
// a shell's soft limit (1024) caps it at a few hundred clients. The Go
// runtime raises it too, but to one below the hard limit. It returns the
// limit weir runs with.
func raiseFDLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open files limit: %w", err)
	}
	if lim.Cur == lim.Max {
		return lim.Cur, nil
	}
	want := lim
	want.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, fmt.Errorf("raise the open files limit from %d to %d: %w", lim.Cur, lim.Max, err)
	}
	return want.Cur, nil
}
