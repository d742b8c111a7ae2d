package main

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// onThreadIn runs f on a goroutine locked to a thread that enter moves
// into another network namespace, then moves the thread back before
// unlocking it. Letting the thread die in the namespace instead is not
// enough: when the goroutine happens to run on the process's main thread,
// which never exits, the runtime parks that thread for good, still in the
// namespace, and /proc/self/net (which follows the main thread) then shows
// the namespace's sockets, not the test's. A thread that cannot be moved
// back stays locked and ends with the goroutine.
func onThreadIn(enter func() error, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read the thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		err = enter()
		if err == nil {
			err = f()
		}
		// enter may have moved the thread before it failed (netns.New).
		if restore := netns.Set(orig); restore == nil {
			runtime.UnlockOSThread()
		} else if err == nil {
			err = fmt.Errorf("return to the test's network namespace: %w", restore)
		}
		errc <- err
	}()
	return <-errc
}

// enterNew moves the calling thread into a new network namespace.
func enterNew() error {
	ns, err := netns.New()
	if err != nil {
		return fmt.Errorf("%w: %v", errNoNetns, err)
	}
	return ns.Close()
}

// enterNamed moves the calling thread into the namespace `ip netns` knows
// as name.
func enterNamed(name string) func() error {
	return func() error {
		h, err := netns.GetFromName(name)
		if err != nil {
			return fmt.Errorf("open network namespace %s: %w", name, err)
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", name, err)
		}
		return nil
	}
}
