package testenv

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// OnThreadIn runs f on a goroutine locked to a thread that enter moves
// into another network namespace, then moves the thread back before
// unlocking it. Letting the thread die in the namespace instead is not
// enough: when the goroutine happens to run on the process's main thread,
// which never exits, the runtime parks that thread for good, still in the
// namespace, and /proc/self/net (which follows the main thread) shows the
// namespace's sockets from then on. A thread that cannot be moved back
// stays locked and ends with the goroutine.
func OnThreadIn(enter, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read the thread's network namespace: %w", err)
			return
		}
		defer home.Close()
		err = enter()
		if err == nil {
			err = f()
		}
		// enter may have moved the thread before it failed (netns.New).
		if back := netns.Set(home); back == nil {
			runtime.UnlockOSThread()
		} else if err == nil {
			err = fmt.Errorf("return to the test's network namespace: %w", back)
		}
		errc <- err
	}()
	return <-errc
}

// InNetns runs f on a thread inside ns (see OnThreadIn).
func InNetns(ns netns.NsHandle, f func() error) error {
	return OnThreadIn(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		return nil
	}, f)
}

// NewNetns creates a network namespace and returns a handle to it, which
// keeps it alive until closed; no thread of the process stays inside.
func NewNetns() (netns.NsHandle, error) {
	ns := netns.None()
	err := OnThreadIn(func() error {
		var err error
		ns, err = netns.New()
		return err
	}, func() error { return nil })
	if err != nil && ns.IsOpen() {
		ns.Close()
	}
	return ns, err
}

// Netns creates a network namespace for t, closed when t ends; it skips t
// (or fails it, under WEIR_REQUIRE_PRIVILEGED=1) when it cannot.
func Netns(t testing.TB) netns.NsHandle {
	t.Helper()
	ns, err := NewNetns()
	if err != nil {
		SkipOrFail(t, fmt.Sprintf("cannot create a network namespace: %v", err))
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
