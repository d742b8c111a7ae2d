//go:build !linux

package server

import (
	"net/netip"

	"github.com/weir-lb/weir/pkg/dataplane"
)

// routeTo needs the kernel's routing table, read through netlink.
func routeTo(netip.Addr) (netip.Addr, string, error) {
	return netip.Addr{}, "", dataplane.ErrUnsupported
}
