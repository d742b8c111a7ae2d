//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// These helpers configure links inside a test namespace; call them from
// inNetns. They only ever touch namespaces the tests created.

func addVeth(name, peer string) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", name, peer, err)
	}
	return nil
}

// moveLink puts link name into the namespace ns.
func moveLink(name string, ns netns.NsHandle) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(l, int(ns)); err != nil {
		return fmt.Errorf("move %s: %w", name, err)
	}
	return nil
}

// addDefaultRoutes routes everything through gateways (one per family).
func addDefaultRoutes(gateways ...netip.Addr) error {
	for _, gw := range gateways {
		r := &netlink.Route{Gw: net.IP(gw.AsSlice())}
		if gw.Is4() {
			r.Dst = &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		} else {
			r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	return nil
}

// enableForwarding turns on IPv4 and IPv6 forwarding in the calling thread's
// namespace; /proc/sys/net follows the namespace of the thread opening it.
func enableForwarding() error {
	for _, p := range []string{"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
	}
	return nil
}

func addNeighbour(link string, ip netip.Addr, mac net.HardwareAddr) error {
	n, err := permanentNeighbour(link, ip, mac)
	if err != nil {
		return err
	}
	if err := netlink.NeighAdd(n); err != nil {
		return fmt.Errorf("add neighbour %s: %w", ip, err)
	}
	return nil
}

// replaceNeighbour gives ip a new MAC address, as when a host is replaced.
func replaceNeighbour(link string, ip netip.Addr, mac net.HardwareAddr) error {
	n, err := permanentNeighbour(link, ip, mac)
	if err != nil {
		return err
	}
	if err := netlink.NeighSet(n); err != nil {
		return fmt.Errorf("replace neighbour %s: %w", ip, err)
	}
	return nil
}

func deleteNeighbour(link string, ip netip.Addr) error {
	n, err := permanentNeighbour(link, ip, nil)
	if err != nil {
		return err
	}
	if err := netlink.NeighDel(n); err != nil {
		return fmt.Errorf("delete neighbour %s: %w", ip, err)
	}
	return nil
}

func permanentNeighbour(link string, ip netip.Addr, mac net.HardwareAddr) (*netlink.Neigh, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return nil, err
	}
	family := netlink.FAMILY_V6
	if ip.Is4() {
		family = netlink.FAMILY_V4
	}
	return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT,
		IP: net.IP(ip.AsSlice()), HardwareAddr: mac}, nil
}

func setMTU(name string, mtu int) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU of %s to %d: %w", name, mtu, err)
	}
	return nil
}

// deleteLink removes link (both ends, for a veth), and its routes with it.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// setChecksumOffload switches a link's TX and RX checksum offload through
// the ethtool ioctl, so that tests can choose between packets with full
// checksums (verified by the receiver) and CHECKSUM_PARTIAL ones.
func setChecksumOffload(link string, tx, rx bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, op := range []struct {
		cmd uint32
		on  bool
	}{{unix.ETHTOOL_STXCSUM, tx}, {unix.ETHTOOL_SRXCSUM, rx}} {
		if err := ethtoolSet(fd, link, op.cmd, op.on); err != nil {
			return fmt.Errorf("ethtool %#x on %s: %w", op.cmd, link, err)
		}
	}
	return nil
}

// readyVethsForXDP turns GRO on and TX checksum offload off on every veth
// of the namespace (see readyForXDP).
func readyVethsForXDP() error {
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, l := range links {
		if l.Type() != "veth" {
			continue
		}
		if err := ethtoolSet(fd, l.Attrs().Name, unix.ETHTOOL_SGRO, true); err != nil {
			return fmt.Errorf("ethtool gro on %s: %w", l.Attrs().Name, err)
		}
		if err := ethtoolSet(fd, l.Attrs().Name, unix.ETHTOOL_STXCSUM, false); err != nil {
			return fmt.Errorf("ethtool tx off %s: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// ifreqData is struct ifreq with its union holding ifr_data.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func ethtoolSet(fd int, link string, cmd uint32, on bool) error {
	value := struct{ cmd, data uint32 }{cmd: cmd}
	if on {
		value.data = 1
	}
	var ifr ifreqData
	copy(ifr.name[:], link)
	ifr.data = unsafe.Pointer(&value)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&value)
	if errno != 0 {
		return errno
	}
	return nil
}

func linkIndex(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

func linkMAC(name string) (net.HardwareAddr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}
