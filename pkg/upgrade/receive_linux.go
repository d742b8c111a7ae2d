package upgrade

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// Receive is the new process's side (weir -u): it creates the upgrade
// socket at path, waits within ctx (DefaultTimeout if it has no
// deadline) for the old process to connect and hand over its sockets,
// and returns them once every descriptor matches its manifest entry.
//
// The socket's directory must belong to this process's user or root and
// be writable by nobody else (ErrUnsafeSocketPath), so not /tmp. One
// receiver at a time holds path+".lock"; a second gets ErrInProgress
// naming the first's pid. A socket file left by a crashed receiver is
// replaced; the socket is mode 0600 from its creation, serves one
// connection and is removed as soon as the old process has connected.
// An old process running as another user than this one or root is
// refused (ErrPeerCredentials); a manifest that is malformed, of another
// version, or does not match its descriptors is refused (ErrManifest,
// ErrVersion) and the old process is told why. On any error, nothing
// inherited stays open and the old process keeps serving.
func Receive(ctx context.Context, path string) (*Inheritance, error) {
	return receive(ctx, path, defaultSettings())
}

func receive(ctx context.Context, path string, s settings) (_ *Inheritance, err error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := checkSocketPath(path); err != nil {
		return nil, err
	}
	if err := checkDirectory(filepath.Dir(path), s.euid); err != nil {
		return nil, err
	}
	lock, err := acquireLock(path+lockSuffix, s.euid)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	ln, id, err := listenSocket(path, s.euid)
	if err != nil {
		return nil, err
	}
	if s.listening != nil {
		s.listening()
	}
	conn, err := acceptOne(ctx, ln, path, id)
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
		return nil, fmt.Errorf("upgrade: refuse the old process on %s: %w", path, err)
	}
	sockets, state, err := readManifest(ctx, ctl)
	if err != nil {
		sendLastWords(ctl, reasonMessage(msgAbort, fmt.Sprintf("the new process (pid %d) refused the sockets: %v", os.Getpid(), err)))
		return nil, fmt.Errorf("upgrade: sockets from the old process (pid %d): %w", peer.Pid, err)
	}
	in := newInheritance(ctl, lock.release, int(peer.Pid), sockets)
	in.state = state
	return in, nil
}

// acceptOne waits for the old process's connection. The upgrade socket
// serves that one connection: it is closed and removed at once, so a
// second old process finds nobody listening.
func acceptOne(ctx context.Context, ln *net.UnixListener, path string, id fs.FileInfo) (*net.UnixConn, error) {
	defer func() {
		ln.Close()
		removeOwn(path, id)
	}()
	stop := afterDone(ctx, func() { _ = ln.SetDeadline(longAgo) })
	conn, err := ln.AcceptUnix()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("upgrade: %w: no old weir connected to %s; send SIGQUIT to the running weir, whose upgrade_sock must be the same: %w", ErrNoPeer, path, ctxError(ctx))
		}
		return nil, fmt.Errorf("upgrade: accept on %s: %w", path, err)
	}
	return conn, nil
}

// readManifest reads the offer, every sockets record, checking each
// descriptor against its entry, and the state records of version 2.
func readManifest(ctx context.Context, ctl *unixControl) ([]Socket, []byte, error) {
	offer, err := ctl.recv(ctx)
	if err != nil {
		return nil, nil, err
	}
	if offer.Type != msgOffer {
		return nil, nil, fmt.Errorf("%w: the first record is %q, not %q", ErrProtocol, offer.Type, msgOffer)
	}
	sockets := make([]Socket, 0, offer.Count)
	seen := make(map[key]struct{}, offer.Count)
	for len(sockets) < offer.Count {
		batch, err := readBatch(ctx, ctl, offer.Count-len(sockets), seen)
		if err != nil {
			closeSockets(sockets)
			return nil, nil, fmt.Errorf("%w: the manifest stopped after %d of %d sockets: %w", ErrManifest, len(sockets), offer.Count, err)
		}
		sockets = append(sockets, batch...)
	}
	if offer.Version < 2 {
		return sockets, nil, nil
	}
	state, err := readState(ctx, ctl)
	if err != nil {
		closeSockets(sockets)
		return nil, nil, err
	}
	return sockets, state, nil
}

// readState reads the state records up to the last, within MaxStateBytes
// and maxStateRecords.
func readState(ctx context.Context, ctl *unixControl) ([]byte, error) {
	var state []byte
	for range maxStateRecords {
		m, err := ctl.recv(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: the state stopped after %d bytes: %w", ErrManifest, len(state), err)
		}
		if m.Type != msgState {
			return nil, fmt.Errorf("%w: a %q record came where the state was expected", ErrProtocol, m.Type)
		}
		if len(state)+len(m.Data) > MaxStateBytes {
			return nil, fmt.Errorf("%w: the state exceeds the limit of %d bytes", ErrManifest, MaxStateBytes)
		}
		state = append(state, m.Data...)
		if m.Last {
			return state, nil
		}
	}
	return nil, fmt.Errorf("%w: the state came in more than %d records", ErrManifest, maxStateRecords)
}

// readBatch reads one sockets record of at most want entries.
func readBatch(ctx context.Context, ctl *unixControl, want int, seen map[key]struct{}) ([]Socket, error) {
	m, files, err := ctl.recvFiles(ctx)
	if err != nil {
		return nil, err
	}
	sockets, err := matchBatch(m, files, want, seen)
	if err != nil {
		closeFiles(files)
		return nil, err
	}
	return sockets, nil
}

// matchBatch pairs each entry of m with its descriptor and checks that
// the descriptor is the socket the entry describes.
func matchBatch(m message, files []*os.File, want int, seen map[key]struct{}) ([]Socket, error) {
	switch {
	case m.Type != msgSockets:
		return nil, fmt.Errorf("%w: a %q record came before the manifest was complete", ErrProtocol, m.Type)
	case len(m.Sockets) > want:
		return nil, fmt.Errorf("%w: a record lists %d sockets, but only %d more were announced", ErrManifest, len(m.Sockets), want)
	case len(files) != len(m.Sockets):
		return nil, fmt.Errorf("%w: a record lists %d sockets but carries %d descriptors", ErrManifest, len(m.Sockets), len(files))
	}
	out := make([]Socket, len(files))
	for i := range m.Sockets {
		e := &m.Sockets[i]
		k := e.key()
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrManifest, k)
		}
		seen[k] = struct{}{}
		if err := verify(files[i], e); err != nil {
			return nil, err
		}
		out[i] = e.socket(files[i])
	}
	return out, nil
}

// verify checks that f is the socket e describes, as the kernel sees it.
func verify(f *os.File, e *entry) error {
	var got sockInfo
	err := controlFD(f, func(fd int) (err error) {
		got, err = inspect(fd)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrManifest, e.key(), err)
	}
	want := sockInfo{network: e.Network, bound: e.Bound, options: e.Options}
	if got != want {
		return fmt.Errorf("%w: %s: the manifest says %s %s %+v, but the descriptor is %s %s %+v", ErrManifest, e.key(), want.network, want.bound, want.options, got.network, got.bound, got.options)
	}
	return nil
}
