package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
)

// adminService names the admin endpoint's sockets in an upgrade's
// manifest. No configured service can have it: service names are
// [a-z0-9_-]+.
const adminService = "@admin"

// adminEndpoint is the admin endpoint: its handler and its sockets.
type adminEndpoint struct {
	cfg       *config.Admin
	handler   *admin.Handler
	listeners []adminListener
	wg        sync.WaitGroup
}

// adminListener is one bound admin address.
type adminListener struct {
	index    int
	ln       net.Listener
	loopback bool
	tcp      bool // handed over in upgrades; a Unix socket is bound anew
	// path and bindAt: a Unix socket's configured path, and where it
	// is bound until it serves.
	path, bindAt string
}

// newAdmin builds the admin endpoint of cfg, reading its token file.
func (s *Server) newAdmin(cfg *config.Admin) (*adminEndpoint, error) {
	var token []byte
	if cfg.TokenFile != "" {
		t, err := config.ReadFile(cfg.TokenFile, "admin token")
		if err != nil {
			return nil, fmt.Errorf("admin token_file: %w", err)
		}
		token = t
	}
	opts := admin.Options{State: s, Token: token, Logger: s.log.With("component", "admin"), Version: s.version}
	if s.metrics != nil {
		opts.Gatherer = s.metrics.Registry
	}
	h, err := admin.New(opts)
	if err != nil {
		return nil, fmt.Errorf("admin (%s): %w", cfg.Pos, err)
	}
	return &adminEndpoint{cfg: cfg, handler: h}, nil
}

// listenAdmin binds the admin addresses: TCP ones taken over from open
// when handed over, Unix sockets bound anew at their path.
func (s *Server) listenAdmin(open Opener) error {
	a := s.admin
	if a == nil {
		return nil
	}
	for i, l := range a.cfg.Listen {
		al := adminListener{index: i, loopback: l.Loopback(), tcp: l.Network == "tcp"}
		var err error
		if al.tcp {
			al.ln, err = listenAdminTCP(open, i, l.Addr)
		} else {
			al.path = l.Addr
			al.ln, al.bindAt, err = listenUnixPrivate(l.Addr)
		}
		if err != nil {
			return fmt.Errorf("admin: listen on %s (%s): %w", l.Addr, l.Pos, err)
		}
		a.listeners = append(a.listeners, al)
	}
	return nil
}

// listenAdminTCP takes the admin socket of addr over from open, or binds
// it.
func listenAdminTCP(open Opener, index int, addr string) (net.Listener, error) {
	ln, err := open.Listener(ListenerSpec{Service: adminService, Network: "tcp", Addr: addr, Index: index})
	if err != nil || ln != nil {
		return ln, err
	}
	return net.Listen("tcp", addr)
}

// listenUnixPrivate binds a Unix socket for path that only weir's user
// may connect to: mode 0600, in a directory that no other user may write
// (where another user could replace the socket with one of their own).
// It binds at a name of its own beside path; publishUnix renames it to
// path once the server serves, so that a successor which fails to start
// never leaves path pointing at a dead socket, and the predecessor of an
// upgrade serves its clients until then.
func listenUnixPrivate(path string) (net.Listener, string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, "", err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != fs.ModeSocket {
		return nil, "", fmt.Errorf("%s exists and is not a socket; remove it or choose another path", path)
	}
	bindAt := fmt.Sprintf("%s.%d", path, os.Getpid())
	if len(bindAt) > maxUnixPath {
		bindAt = path // no room for a suffix: bind in place
		os.Remove(path)
	}
	os.Remove(bindAt) // a socket of a killed process with our pid
	// Created with no permission for anyone but the owner from the
	// start: a chmod after bind would leave a window.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", bindAt)
	syscall.Umask(old)
	if err != nil {
		return nil, "", err
	}
	// A successor may have taken path by the time this one closes:
	// closing must not unlink the successor's socket.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, bindAt, nil
}

// maxUnixPath is the longest path a Unix socket address holds on Linux.
const maxUnixPath = 107

// publishUnix moves a socket bound at bindAt to path, atomically: a
// client connecting by path reaches the old socket or the new one.
func publishUnix(bindAt, path string) error {
	if bindAt == path {
		return nil
	}
	return os.Rename(bindAt, path)
}

// checkPrivateDir refuses a directory that users other than its owner
// may write to.
func checkPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("directory %s is writable by other users (mode %v), who could replace the socket; use a directory such as /run/weir", dir, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("directory %s belongs to uid %d, neither weir's user nor root; use a directory weir owns", dir, st.Uid)
	}
	return nil
}

// serveAdmin serves the admin endpoint on its listeners until shutdown.
func (s *Server) serveAdmin(errc chan<- error) {
	a := s.admin
	if a == nil {
		return
	}
	for _, l := range a.listeners {
		if !l.tcp {
			if err := publishUnix(l.bindAt, l.path); err != nil {
				report(errc, fmt.Errorf("admin: publish %s: %w", l.path, err))
				continue
			}
		}
		a.wg.Go(func() {
			if err := a.handler.Serve(l.ln, l.loopback); err != nil && !errors.Is(err, http.ErrServerClosed) {
				report(errc, fmt.Errorf("admin on %s: %w", l.ln.Addr(), err))
			}
		})
	}
}

// adminShutdownTimeout bounds the admin requests in flight when the
// server stops: a scrape or a status read, short by nature.
const adminShutdownTimeout = 2 * time.Second

// shutdownAdmin stops the admin endpoint, letting requests in flight
// finish within timeout.
func (s *Server) shutdownAdmin(timeout time.Duration) {
	a := s.admin
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := a.handler.Shutdown(ctx); err != nil {
		a.handler.Close()
	}
	a.wg.Wait()
}

// adminSockets returns the admin endpoint's TCP sockets, for handing over.
func (s *Server) adminSockets() []Socket {
	if s.admin == nil {
		return nil
	}
	var out []Socket
	for _, l := range s.admin.listeners {
		if !l.tcp {
			continue
		}
		addr := s.admin.cfg.Listen[l.index].Addr
		out = append(out, Socket{ListenerSpec: ListenerSpec{Service: adminService, Network: "tcp", Addr: addr, Index: l.index}, Listener: l.ln})
	}
	return out
}

// closeAdminListeners closes the admin sockets that never served.
func (s *Server) closeAdminListeners() {
	if s.admin == nil {
		return
	}
	for _, l := range s.admin.listeners {
		l.ln.Close()
		if !l.tcp && l.bindAt != l.path {
			os.Remove(l.bindAt) // never published
		}
	}
}
