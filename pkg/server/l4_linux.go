package server

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// routeTo asks the kernel how it reaches addr: the source address it
// would use and the interface it would leave by.
func routeTo(addr netip.Addr) (src netip.Addr, ifname string, err error) {
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil || len(routes) == 0 {
		return netip.Addr{}, "", fmt.Errorf("no route to backend %s: %v", addr, err)
	}
	r := routes[0]
	src, ok := netip.AddrFromSlice(r.Src)
	if !ok {
		return netip.Addr{}, "", fmt.Errorf("the route to backend %s has no source address", addr)
	}
	link, err := netlink.LinkByIndex(r.LinkIndex)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("the interface towards backend %s (index %d): %w", addr, r.LinkIndex, err)
	}
	return src.Unmap(), link.Attrs().Name, nil
}
