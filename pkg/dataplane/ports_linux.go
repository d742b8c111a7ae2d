package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// The sysctls that say which source ports the kernel picks itself. There
// is no IPv6 twin: net.ipv4.ip_local_port_range governs both families.
const (
	localPortRangePath     = "/proc/sys/net/ipv4/ip_local_port_range"
	localReservedPortsPath = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

// ReadEphemeral reads the ephemeral ports of the calling thread's network
// namespace (the balancer's): ip_local_port_range and
// ip_local_reserved_ports.
func ReadEphemeral() (Ephemeral, error) {
	b, err := os.ReadFile(localPortRangePath)
	if err != nil {
		return Ephemeral{}, fmt.Errorf("dataplane: read the kernel's ephemeral ports: %w", err)
	}
	r, err := ParsePortRange(string(b))
	if err != nil {
		return Ephemeral{}, fmt.Errorf("dataplane: %s: %w", localPortRangePath, err)
	}
	eph := Ephemeral{Range: r}
	b, err = os.ReadFile(localReservedPortsPath)
	if err != nil {
		return Ephemeral{}, fmt.Errorf("dataplane: read the kernel's reserved ports: %w", err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if f == "" {
			continue
		}
		r, err := ParsePortRange(f)
		if err != nil {
			return Ephemeral{}, fmt.Errorf("dataplane: %s: %w", localReservedPortsPath, err)
		}
		eph.Reserved = append(eph.Reserved, r)
	}
	return eph, nil
}

// IsLocalAddr reports whether addr is assigned to an interface of the
// calling thread's network namespace, so that the kernel may use it as a
// source address.
func IsLocalAddr(addr netip.Addr) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("dataplane: list this host's addresses: %w", err)
	}
	addr = addr.Unmap()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr.WithZone("") {
				return true, nil
			}
		}
	}
	return false, nil
}

// CheckHostSNATPorts is CheckSNATPorts with what the calling thread's
// network namespace says: its ephemeral ports, and whether its sockets may
// use addr: addr is one of its addresses, or ip_nonlocal_bind lets them
// bind any. An invalid addr stands for the address the kernel will choose
// towards the backends, which is always local.
func CheckHostSNATPorts(addr netip.Addr, ports PortRange) error {
	eph, err := ReadEphemeral()
	if err != nil {
		return err
	}
	local := true
	if addr.IsValid() {
		if local, err = IsLocalAddr(addr); err != nil {
			return err
		}
		if !local {
			// With ip_nonlocal_bind a socket may bind an address the host
			// does not have, and take an ephemeral port on it.
			if local, err = nonlocalBind(addr); err != nil {
				return err
			}
		}
	}
	return CheckSNATPorts(addr, ports, eph, local)
}

// nonlocalBind reports whether sockets of addr's family may bind addresses
// the host does not have (net.ipv4.ip_nonlocal_bind,
// net.ipv6.ip_nonlocal_bind).
func nonlocalBind(addr netip.Addr) (bool, error) {
	path := "/proc/sys/net/ipv4/ip_nonlocal_bind"
	if addr.Unmap().Is6() {
		path = "/proc/sys/net/ipv6/ip_nonlocal_bind"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("dataplane: read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)) != "0", nil
}
