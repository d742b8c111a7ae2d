package upgrade

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// sockInfo is what the kernel says about a socket: the part of a
// manifest entry that is not configuration.
type sockInfo struct {
	network string
	bound   netip.AddrPort
	options Options
}

// inspect reads what a manifest entry states about the socket fd, and
// refuses sockets weir does not hand over: anything but a listening TCP
// socket or a bound, unconnected UDP socket.
func inspect(fd int) (sockInfo, error) {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return sockInfo{}, fmt.Errorf("%w: not a socket: %w", ErrUnsupportedSocket, os.NewSyscallError("getsockopt SO_DOMAIN", err))
	}
	if domain != unix.AF_INET && domain != unix.AF_INET6 {
		return sockInfo{}, fmt.Errorf("%w: address family %d is not IPv4 or IPv6", ErrUnsupportedSocket, domain)
	}
	nw, mptcp, err := network(fd)
	if err != nil {
		return sockInfo{}, err
	}
	if err := checkServing(fd, nw); err != nil {
		return sockInfo{}, err
	}
	bound, err := boundAddr(fd)
	if err != nil {
		return sockInfo{}, err
	}
	opts, err := readOptions(fd, domain, nw, mptcp)
	if err != nil {
		return sockInfo{}, err
	}
	return sockInfo{network: nw, bound: bound, options: opts}, nil
}

// network classifies the socket by type and protocol.
func network(fd int) (name string, mptcp bool, err error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return "", false, os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return "", false, os.NewSyscallError("getsockopt SO_PROTOCOL", err)
	}
	switch {
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP:
		return NetworkTCP, false, nil
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_MPTCP:
		return NetworkTCP, true, nil
	case typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
		return NetworkUDP, false, nil
	}
	return "", false, fmt.Errorf("%w: socket type %d, protocol %d is neither TCP nor UDP", ErrUnsupportedSocket, typ, proto)
}

// checkServing refuses a TCP socket that does not listen and a UDP
// socket connected to one peer: neither serves a listen address.
func checkServing(fd int, network string) error {
	if network == NetworkTCP {
		listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			return os.NewSyscallError("getsockopt SO_ACCEPTCONN", err)
		}
		if listening == 0 {
			return fmt.Errorf("%w: the TCP socket is not listening", ErrUnsupportedSocket)
		}
		return nil
	}
	if _, err := unix.Getpeername(fd); !errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("%w: the UDP socket is connected to a peer", ErrUnsupportedSocket)
	}
	return nil
}

// boundAddr is getsockname as an address and port; an IPv6 scope is
// kept as its interface index.
func boundAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, os.NewSyscallError("getsockname", err)
	}
	var ap netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(sa.ZoneId), 10))
		}
		ap = netip.AddrPortFrom(ip, uint16(sa.Port))
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: getsockname returned a %T", ErrUnsupportedSocket, sa)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: the socket is not bound to a port", ErrUnsupportedSocket)
	}
	return ap, nil
}

// readOptions reads every option of Options that applies to the socket.
func readOptions(fd, domain int, network string, mptcp bool) (Options, error) {
	o := Options{MPTCP: mptcp}
	flags := []struct {
		dst         *bool
		level, name int
		what        string
		applies     bool
	}{
		{&o.ReuseAddr, unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR", true},
		{&o.ReusePort, unix.SOL_SOCKET, unix.SO_REUSEPORT, "SO_REUSEPORT", true},
		{&o.V6Only, unix.SOL_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", domain == unix.AF_INET6},
		{&o.FreeBind, unix.SOL_IP, unix.IP_FREEBIND, "IP_FREEBIND", true},
		{&o.Transparent, unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT", true},
	}
	for _, f := range flags {
		if !f.applies {
			continue
		}
		v, err := optionInt(fd, f.level, f.name, f.what)
		if err != nil {
			return Options{}, err
		}
		*f.dst = v != 0
	}
	if network == NetworkTCP {
		v, err := optionInt(fd, unix.SOL_TCP, unix.TCP_FASTOPEN, "TCP_FASTOPEN")
		if err != nil {
			return Options{}, err
		}
		o.FastOpen = v
	}
	dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	if err != nil {
		return Options{}, os.NewSyscallError("getsockopt SO_BINDTODEVICE", err)
	}
	o.Device = dev
	return o, nil
}

// optionInt reads an integer option; one the socket's protocol does not
// implement reads as 0, as it cannot have been set either.
func optionInt(fd, level, name int, what string) (int, error) {
	v, err := unix.GetsockoptInt(fd, level, name)
	if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("getsockopt "+what, err)
	}
	return v, nil
}

// controlFD runs fn on f's descriptor without os.File.Fd, which would
// switch a socket from the net package to blocking mode — and that mode
// is shared with every duplicate, including the old process's listener.
func controlFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

// dupFD duplicates fd, close-on-exec.
func dupFD(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return nfd, nil
}
