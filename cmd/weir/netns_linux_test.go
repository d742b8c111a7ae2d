package main

import (
	"fmt"

	"github.com/vishvananda/netns"
)

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
