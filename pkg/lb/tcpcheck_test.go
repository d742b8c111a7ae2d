package lb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// probeHangLimit bounds how long a test waits for a check that should
// return on its own; reaching it means the check ignored its timeout.
const probeHangLimit = 10 * time.Second

// probeListener listens on a free loopback port until the test ends.
func probeListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// probeUnixListener listens on a Unix socket in a temporary directory.
func probeUnixListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "backend.sock"))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// probeRefusedAddr returns a loopback address nothing listens on: a port
// that was free a moment ago.
func probeRefusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// probeBackend returns the backend for a listener's address, in the form
// ParseAddr gives it ("unix:/path" for a Unix socket).
func probeBackend(t *testing.T, addr net.Addr) *Backend {
	t.Helper()
	s := addr.String()
	if addr.Network() == "unix" {
		s = unixPrefix + s
	}
	return probeBackendAt(t, s)
}

func probeBackendAt(t *testing.T, addr string) *Backend {
	t.Helper()
	b, err := NewBackend(addr, 1)
	if err != nil {
		t.Fatalf("NewBackend(%q): %v", addr, err)
	}
	return &b
}

// checkWithin runs a check and fails the test if it hangs: a guard for
// tests of timeouts, so that a broken timeout fails instead of blocking.
func checkWithin(t *testing.T, ctx context.Context, hc HealthCheck, b *Backend) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- hc.Check(ctx, b) }()
	select {
	case err := <-done:
		return err
	case <-time.After(probeHangLimit):
		t.Fatalf("check did not return within %v", probeHangLimit)
		return nil
	}
}

// serveTLSHandshakes completes a TLS handshake with cfg on every
// connection to ln, then closes it, until the test ends. It returns the
// server names the clients sent, in order.
func serveTLSHandshakes(t *testing.T, ln net.Listener, cfg *tls.Config) <-chan string {
	t.Helper()
	snis := make(chan string, 16)
	cfg = cfg.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case snis <- hello.ServerName:
		default:
			t.Errorf("more handshakes than the SNI buffer holds")
		}
		return nil, nil
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handshakeAndClose(conn, cfg) })
		}
	})
	return snis
}

func handshakeAndClose(conn net.Conn, cfg *tls.Config) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeHangLimit)
	defer cancel()
	// A failed handshake is the client's verdict to report, not ours.
	_ = tls.Server(conn, cfg).HandshakeContext(ctx)
}

func TestTCPCheck(t *testing.T) {
	ca := newTestCA(t)
	tlsLn := probeListener(t)
	serveTLSHandshakes(t, tlsLn, ca.serverConfig("127.0.0.1", "api.test"))
	tlsUnixLn := probeUnixListener(t)
	serveTLSHandshakes(t, tlsUnixLn, ca.serverConfig("api.test"))
	refused := probeRefusedAddr(t)
	missingSocket := unixPrefix + filepath.Join(t.TempDir(), "missing.sock")

	tests := []struct {
		name    string
		backend *Backend
		check   TCPCheck
		wantIs  error  // nil: healthy
		wantMsg string // exact error text, when not empty
		wantAs  any    // pointer to an error type the error must contain
	}{
		{name: "accepting listener", backend: probeBackend(t, probeListener(t).Addr())},
		{name: "unix socket", backend: probeBackend(t, probeUnixListener(t).Addr())},
		{
			name: "refused", backend: probeBackendAt(t, refused),
			wantIs: syscall.ECONNREFUSED, wantMsg: "connect " + refused + ": connection refused",
		},
		{
			name: "missing unix socket", backend: probeBackendAt(t, missingSocket),
			wantIs: syscall.ENOENT, wantMsg: "connect " + missingSocket + ": no such file or directory",
		},
		{
			name: "tls trusted", backend: probeBackend(t, tlsLn.Addr()),
			check: TCPCheck{TLS: ca.clientConfig()},
		},
		{
			name: "tls over unix with SNI", backend: probeBackend(t, tlsUnixLn.Addr()),
			check: TCPCheck{TLS: ca.clientConfig(), SNI: "api.test"},
		},
		{
			name: "tls untrusted", backend: probeBackend(t, tlsLn.Addr()),
			check:  TCPCheck{TLS: &tls.Config{MinVersion: tls.VersionTLS12}},
			wantAs: new(x509.UnknownAuthorityError),
		},
		{
			name: "tls name mismatch", backend: probeBackend(t, tlsLn.Addr()),
			check:  TCPCheck{TLS: ca.clientConfig(), SNI: "other.test"},
			wantAs: new(x509.HostnameError),
		},
		{
			name: "tls skip verify", backend: probeBackend(t, tlsLn.Addr()),
			check: TCPCheck{TLS: &tls.Config{InsecureSkipVerify: true}},
		},
		{
			name: "negative timeout", backend: probeBackend(t, probeListener(t).Addr()),
			check: TCPCheck{Timeout: -time.Second}, wantIs: ErrBadHealthCheck,
		},
		{
			name: "SNI without TLS", backend: probeBackend(t, probeListener(t).Addr()),
			check: TCPCheck{SNI: "api.test"}, wantIs: ErrBadHealthCheck,
		},
		{name: "nil backend", wantIs: ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkWithin(t, t.Context(), &tt.check, tt.backend)
			assertProbeError(t, err, tt.wantIs, tt.wantMsg, tt.wantAs)
			if tt.wantAs != nil && !strings.HasPrefix(err.Error(), "tls handshake with "+tt.backend.Addr+": ") {
				t.Errorf("error %q does not name the step and backend", err)
			}
		})
	}
}

// assertProbeError checks a check's error: nil when wantIs and wantAs
// are nil; otherwise matching wantIs, wantAs and the exact text wantMsg,
// each when set.
func assertProbeError(t *testing.T, err, wantIs error, wantMsg string, wantAs any) {
	t.Helper()
	if wantIs == nil && wantAs == nil {
		if err != nil {
			t.Fatalf("check failed: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("check passed, want an error")
	}
	t.Logf("error: %v", err)
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("error %q is not %q", err, wantIs)
	}
	if wantAs != nil && !errors.As(err, wantAs) {
		t.Errorf("error %q does not contain a %T", err, wantAs)
	}
	if wantMsg != "" && err.Error() != wantMsg {
		t.Errorf("error text\n got %q\nwant %q", err, wantMsg)
	}
}

func TestTCPCheckSNI(t *testing.T) {
	ca := newTestCA(t)
	ln := probeListener(t)
	snis := serveTLSHandshakes(t, ln, ca.serverConfig("127.0.0.1", "localhost", "api.test", "cfg.test"))
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	withServerName := ca.clientConfig()
	withServerName.ServerName = "cfg.test"

	tests := []struct {
		name    string
		addr    string
		check   TCPCheck
		wantSNI string
	}{
		{name: "IP backend sends none", addr: ln.Addr().String(), check: TCPCheck{TLS: ca.clientConfig()}, wantSNI: ""},
		{name: "DNS backend sends its host", addr: "localhost:" + port, check: TCPCheck{TLS: ca.clientConfig()}, wantSNI: "localhost"},
		{name: "explicit SNI", addr: ln.Addr().String(), check: TCPCheck{TLS: ca.clientConfig(), SNI: "api.test"}, wantSNI: "api.test"},
		{name: "config ServerName", addr: ln.Addr().String(), check: TCPCheck{TLS: withServerName}, wantSNI: "cfg.test"},
		{name: "SNI beats config ServerName", addr: "localhost:" + port, check: TCPCheck{TLS: withServerName, SNI: "api.test"}, wantSNI: "api.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverName := tt.check.TLS.ServerName
			if err := checkWithin(t, t.Context(), &tt.check, probeBackendAt(t, tt.addr)); err != nil {
				t.Fatalf("check failed: %v", err)
			}
			select {
			case got := <-snis:
				if got != tt.wantSNI {
					t.Errorf("server saw SNI %q, want %q", got, tt.wantSNI)
				}
			default:
				t.Fatalf("the check passed but the server saw no handshake")
			}
			if tt.check.TLS.ServerName != serverName {
				t.Errorf("check changed its TLS config's ServerName from %q to %q", serverName, tt.check.TLS.ServerName)
			}
		})
	}
}

func TestTCPCheckTimeout(t *testing.T) {
	ca := newTestCA(t)
	// A listener that never accepts: the kernel completes the TCP
	// handshake from its backlog, so the TLS handshake waits forever.
	silent := probeListener(t)
	b := probeBackend(t, silent.Addr())
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	shortDeadline := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}

	tests := []struct {
		name    string
		ctx     func(t *testing.T) context.Context
		check   TCPCheck
		wantIs  error
		wantMsg string
	}{
		{
			name:  "check timeout",
			ctx:   func(t *testing.T) context.Context { return t.Context() },
			check: TCPCheck{TLS: ca.clientConfig(), Timeout: 100 * time.Millisecond}, wantIs: ErrCheckTimeout,
			wantMsg: "tls handshake with " + b.Addr + ": timed out after 100ms",
		},
		{
			name:  "context deadline earlier than timeout",
			ctx:   shortDeadline,
			check: TCPCheck{TLS: ca.clientConfig(), Timeout: time.Hour}, wantIs: ErrCheckTimeout,
		},
		{
			name:  "canceled context is not a timeout",
			ctx:   func(*testing.T) context.Context { return canceled },
			check: TCPCheck{TLS: ca.clientConfig()}, wantIs: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkWithin(t, tt.ctx(t), &tt.check, b)
			assertProbeError(t, err, tt.wantIs, tt.wantMsg, nil)
			if tt.wantIs != ErrCheckTimeout && errors.Is(err, ErrCheckTimeout) {
				t.Errorf("error %q reported as a timeout", err)
			}
		})
	}
}

func TestProbeContextBudget(t *testing.T) {
	tests := []struct {
		name        string
		timeout     time.Duration
		ctxDeadline time.Duration // 0: none
		wantAtMost  time.Duration
		wantAtLeast time.Duration
	}{
		{name: "default", wantAtMost: DefaultCheckTimeout, wantAtLeast: DefaultCheckTimeout},
		{name: "configured", timeout: 3 * time.Second, wantAtMost: 3 * time.Second, wantAtLeast: 3 * time.Second},
		{name: "context earlier", timeout: time.Hour, ctxDeadline: time.Minute, wantAtMost: time.Minute, wantAtLeast: 50 * time.Second},
		{name: "context later", timeout: time.Second, ctxDeadline: time.Hour, wantAtMost: time.Second, wantAtLeast: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.Context()
			if tt.ctxDeadline > 0 {
				var cancel context.CancelFunc
				parent, cancel = context.WithTimeout(parent, tt.ctxDeadline)
				defer cancel()
			}
			ctx, cancel, budget := probeContext(parent, tt.timeout)
			defer cancel()
			if budget > tt.wantAtMost || budget < tt.wantAtLeast {
				t.Errorf("budget %v, want %v to %v", budget, tt.wantAtLeast, tt.wantAtMost)
			}
			deadline, ok := ctx.Deadline()
			if !ok || time.Until(deadline) > tt.wantAtMost {
				t.Errorf("deadline in %v, want at most %v", time.Until(deadline), tt.wantAtMost)
			}
		})
	}
}
