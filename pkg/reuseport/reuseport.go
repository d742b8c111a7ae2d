package reuseport

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// MaxSockets is the largest group: the capacity of the steering maps
// (RP_MAX_SOCKETS in bpf/reuseport.c).
const MaxSockets = 128

// PinDir is the directory under a pin path that holds one subdirectory of
// maps per group (see GroupName).
const PinDir = "reuseport"

var (
	// ErrInvalidConfig reports a Config or argument that cannot work.
	ErrInvalidConfig = errors.New("reuseport: invalid configuration")
	// ErrInherited reports an inherited socket a group cannot take over.
	ErrInherited = errors.New("reuseport: unusable inherited socket")
	// ErrNoSteering reports why a group runs without BPF steering.
	ErrNoSteering = errors.New("reuseport: no BPF steering")
)

// Config sizes a group and says where its steering maps live.
type Config struct {
	// Sockets is the group size K, 1 to MaxSockets. Without steering a
	// group has one socket whatever K is.
	Sockets int
	// PinPath is a bpffs directory (weir's bpf.pin_path); the group's maps
	// go in PinPath/reuseport/<GroupName>. Empty disables steering.
	PinPath string
	// KeepAlive is the TCP keep-alive period of the connections the
	// group's new sockets accept, as in net.ListenConfig: 0 for Go's
	// default (probes after 15 s idle), negative for no probes. Inherited
	// sockets keep Go's default: net.FileListener takes no ListenConfig.
	KeepAlive time.Duration
	// ClientSpeaksFirst says the protocol served has the client send
	// first and the server answer (HTTP, TLS), so that an accepted
	// connection can delay the acknowledgement of what it receives until
	// the answer carries it. Linux only; inherited sockets get it too.
	ClientSpeaksFirst bool
}

func (c Config) check() error {
	if c.Sockets < 1 || c.Sockets > MaxSockets {
		return fmt.Errorf("%w: %d sockets: want 1 to %d", ErrInvalidConfig, c.Sockets, MaxSockets)
	}
	return nil
}

// GroupName names the group bound to addr in the pin path: "tcp_" and the
// address with its punctuation replaced, since bpffs refuses names with a
// dot. 127.0.0.1:8080 is tcp_127_0_0_1_8080, [::]:443 is
// tcp_0000_0000_0000_0000_0000_0000_0000_0000_443.
func GroupName(addr netip.AddrPort) string {
	ip := addr.Addr().Unmap()
	s := ip.String()
	if ip.Is6() {
		s = ip.StringExpanded()
	}
	s = strings.NewReplacer(".", "_", ":", "_", "%", "_").Replace(s)
	return fmt.Sprintf("tcp_%s_%d", s, addr.Port())
}
