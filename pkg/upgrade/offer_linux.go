package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Retry delays of Offer while no new process listens yet.
const (
	firstRetryDelay = 5 * time.Millisecond
	maxRetryDelay   = 200 * time.Millisecond
)

// Offer is the old process's side (on SIGQUIT): it connects to the new
// process's upgrade socket at path, retrying within ctx (DefaultTimeout
// if it has no deadline) while nobody listens yet, so the new process
// may start before or after the signal. It checks that the new process
// runs as this process's user or root (ErrPeerCredentials), then sends
// the manifest and the descriptors of sockets.
//
// Offer reads each socket's Network, Bound and Options from its File:
// the manifest states what the kernel says. It neither closes nor
// changes the sockets, which go on serving until (*Handoff).Wait says
// otherwise. On error the old process keeps serving; when the new
// process refused the sockets the error wraps ErrAborted with its
// reason.
func Offer(ctx context.Context, path string, sockets []Socket) (*Handoff, error) {
	return offer(ctx, path, sockets, nil, defaultSettings())
}

// OfferState is Offer that also hands over state, an opaque blob of at
// most MaxStateBytes (weir's runtime overrides and health verdicts),
// which the new process reads with (*Inheritance).State. It travels
// after the sockets, in records of its own; a new process too old to
// read it refuses the whole manifest (ErrVersion), and the old process
// serves on.
func OfferState(ctx context.Context, path string, sockets []Socket, state []byte) (*Handoff, error) {
	return offer(ctx, path, sockets, state, defaultSettings())
}

func offer(ctx context.Context, path string, sockets []Socket, state []byte, s settings) (_ *Handoff, err error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := checkSocketPath(path); err != nil {
		return nil, err
	}
	entries, fds, err := describe(sockets)
	if err != nil {
		return nil, err
	}
	defer closeFDs(fds)
	groups, err := batches(entries)
	if err != nil {
		return nil, err
	}
	stateMsgs, err := stateRecords(state)
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	conn, err := dial(ctx, path, s.dialFailed)
	if err != nil {
		return nil, err
	}
	ctl := newUnixControl(conn)
	defer func() {
		if err != nil {
			ctl.close()
		}
	}()
	peer, err := ctl.peerCred()
	if err != nil {
		return nil, fmt.Errorf("upgrade: credentials of the process on %s: %w", path, err)
	}
	if err := s.trust(peer); err != nil {
		return nil, fmt.Errorf("upgrade: refuse to hand sockets to the process on %s: %w", path, err)
	}
	if err := sendManifest(ctx, ctl, len(entries), groups, fds, stateMsgs); err != nil {
		return nil, refusal(ctl, int(peer.Pid), err)
	}
	return newHandoff(ctl, int(peer.Pid)), nil
}

// describe turns sockets into manifest entries and duplicates of their
// descriptors to send (closed by the caller).
func describe(sockets []Socket) ([]entry, []int, error) {
	if len(sockets) > maxSockets {
		return nil, nil, fmt.Errorf("upgrade: %w: %d sockets; at most %d can be handed over", ErrManifest, len(sockets), maxSockets)
	}
	entries := make([]entry, 0, len(sockets))
	fds := make([]int, 0, len(sockets))
	for i := range sockets {
		e, fd, err := describeOne(&sockets[i])
		if err != nil {
			closeFDs(fds)
			return nil, nil, fmt.Errorf("upgrade: %w", err)
		}
		entries = append(entries, e)
		fds = append(fds, fd)
	}
	if err := checkUnique(entries); err != nil {
		closeFDs(fds)
		return nil, nil, fmt.Errorf("upgrade: %w", err)
	}
	return entries, fds, nil
}

func describeOne(s *Socket) (entry, int, error) {
	k := s.key()
	if s.File == nil {
		return entry{}, -1, fmt.Errorf("%w: %s has no File", ErrUnsupportedSocket, k)
	}
	var info sockInfo
	dup := -1
	err := controlFD(s.File, func(fd int) (err error) {
		info, dup, err = inspectDup(fd)
		return err
	})
	if err != nil {
		return entry{}, -1, fmt.Errorf("%s: %w", k, err)
	}
	e := entry{Service: s.Service, Addr: s.Addr, Index: s.Index, Member: s.Member, Network: info.network, Bound: info.bound, Options: info.options}
	if err := e.validate(); err != nil {
		unix.Close(dup)
		return entry{}, -1, err
	}
	return e, dup, nil
}

// inspectDup reads what a manifest entry states about fd, and
// duplicates it for sending.
func inspectDup(fd int) (sockInfo, int, error) {
	info, err := inspect(fd)
	if err != nil {
		return sockInfo{}, -1, err
	}
	dup, err := dupFD(fd)
	return info, dup, err
}

// dial connects to the upgrade socket, retrying with backoff while no
// new process listens there yet (no file, or a stale one).
func dial(ctx context.Context, path string, failed func(error)) (*net.UnixConn, error) {
	addr := &net.UnixAddr{Name: path, Net: "unixpacket"}
	delay := firstRetryDelay
	for attempt := 1; ; attempt++ {
		conn, err := net.DialUnix("unixpacket", nil, addr)
		if err == nil {
			return conn, nil
		}
		if !notListening(err) {
			return nil, fmt.Errorf("upgrade: connect to %s: %w", path, err)
		}
		if failed != nil {
			failed(err)
		}
		wait := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil, fmt.Errorf("upgrade: %w: no new weir listened on %s (%d attempts, the last: %v); start it with -u and the same upgrade_sock: %w", ErrNoPeer, path, attempt, err, ctxError(ctx))
		case <-wait.C:
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// notListening reports the connect errors of a socket nobody listens on
// yet, or whose backlog is momentarily full: worth retrying.
func notListening(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EAGAIN)
}

// sendManifest sends the offer, then the sockets records with their
// descriptors, then the state records.
func sendManifest(ctx context.Context, ctl *unixControl, count int, groups [][]entry, fds []int, state []message) error {
	if err := ctl.send(ctx, offerMessage(count)); err != nil {
		return err
	}
	sent := 0
	for _, g := range groups {
		if err := ctl.sendFDs(ctx, message{Type: msgSockets, Sockets: g}, fds[sent:sent+len(g)]); err != nil {
			return err
		}
		sent += len(g)
	}
	for _, m := range state {
		if err := ctl.send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// refusal explains a manifest that could not be delivered: a new process
// that refused it hung up after saying why.
func refusal(ctl *unixControl, peerPID int, err error) error {
	if errors.Is(err, ErrPeerGone) {
		ctx, cancel := context.WithTimeout(context.Background(), lastWordsTimeout)
		defer cancel()
		if m, rerr := ctl.recv(ctx); rerr == nil && m.Type == msgAbort {
			return fmt.Errorf("upgrade: %w (pid %d): %s", ErrAborted, peerPID, m.Reason)
		}
	}
	return fmt.Errorf("upgrade: hand sockets to the new process (pid %d): %w", peerPID, err)
}

// FromListener describes ln, a TCP listener of this process, as listener
// index of service, configured as addr, member member of its SO_REUSEPORT
// group (0 for a single socket). The Socket's File is a duplicate
// of ln's descriptor made without (*net.TCPListener).File, whose Fd
// would switch the shared socket to blocking mode and stall ln's
// Accept; the caller closes it when done.
func FromListener(service, addr string, index, member int, ln net.Listener) (Socket, error) {
	return fromConn(key{service, addr, index, member}, ln, NetworkTCP)
}

// FromPacketConn describes pc, a bound UDP socket of this process, as
// listener index of service, configured as addr; see FromListener.
func FromPacketConn(service, addr string, index int, pc net.PacketConn) (Socket, error) {
	return fromConn(key{service, addr, index, 0}, pc, NetworkUDP)
}

func fromConn(k key, c any, network string) (Socket, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Socket{}, fmt.Errorf("upgrade: %s: %w: a %T does not expose its descriptor; hand over the *net.TCPListener or *net.UDPConn underneath (TLS is layered on again after adoption)", k, ErrUnsupportedSocket, c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Socket{}, fmt.Errorf("upgrade: %s: %w", k, err)
	}
	var info sockInfo
	dup := -1
	var inner error
	if err := rc.Control(func(fd uintptr) { info, dup, inner = inspectDup(int(fd)) }); err != nil {
		return Socket{}, fmt.Errorf("upgrade: %s: %w", k, err)
	}
	if inner != nil {
		return Socket{}, fmt.Errorf("upgrade: %s: %w", k, inner)
	}
	e := entry{Service: k.service, Addr: k.addr, Index: k.index, Member: k.member, Network: info.network, Bound: info.bound, Options: info.options}
	if err := e.validate(); err != nil {
		unix.Close(dup)
		return Socket{}, fmt.Errorf("upgrade: %w", err)
	}
	if info.network != network {
		unix.Close(dup)
		return Socket{}, fmt.Errorf("upgrade: %s: %w: it is a %s socket, not %s", k, ErrUnsupportedSocket, info.network, network)
	}
	return e.socket(os.NewFile(uintptr(dup), k.String())), nil
}
