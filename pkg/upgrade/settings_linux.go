package upgrade

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// settings are what the handoff takes from its environment; a test
// replaces them to play another user or to observe the retries.
type settings struct {
	euid int
	// trust decides whether the peer may take part.
	trust func(peer unix.Ucred) error
	// listening, if set, runs once the upgrade socket accepts.
	listening func()
	// dialFailed, if set, runs after each failed connection attempt of
	// Offer, before it waits to retry.
	dialFailed func(error)
}

func defaultSettings() settings {
	euid := os.Geteuid()
	return settings{euid: euid, trust: sameUserOrRoot(euid)}
}

// sameUserOrRoot trusts a peer running as self or as root: the only
// users who could have bound the ports, or may be handed them.
func sameUserOrRoot(self int) func(unix.Ucred) error {
	return func(peer unix.Ucred) error {
		if int(peer.Uid) == self || peer.Uid == 0 {
			return nil
		}
		return fmt.Errorf("%w: pid %d runs as uid %d, and only uid %d (this process's user) or root may take part in an upgrade", ErrPeerCredentials, peer.Pid, peer.Uid, self)
	}
}
