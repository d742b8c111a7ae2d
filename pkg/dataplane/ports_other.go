//go:build !linux

package dataplane

import (
	"fmt"
	"net/netip"
	"runtime"
)

func noSysctls() error {
	return fmt.Errorf("%w: %s has no ip_local_port_range", ErrUnsupported, runtime.GOOS)
}

// ReadEphemeral always fails with ErrUnsupported: only Linux runs the data
// plane.
func ReadEphemeral() (Ephemeral, error) { return Ephemeral{}, noSysctls() }

// IsLocalAddr always fails with ErrUnsupported.
func IsLocalAddr(netip.Addr) (bool, error) { return false, noSysctls() }

// CheckHostSNATPorts always fails with ErrUnsupported.
func CheckHostSNATPorts(netip.Addr, PortRange) error { return noSysctls() }
