package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/weir-lb/weir/pkg/proxyproto"
)

// DefaultCheckTimeout bounds a probe whose Timeout is zero. A health check
// runs every few seconds; a backend that cannot answer within a second is
// not one to send traffic to.
const DefaultCheckTimeout = time.Second

// Errors reported by the health checks. Check errors wrap them with the
// backend and the step that failed, so test with errors.Is.
var (
	// ErrCheckTimeout: the probe did not finish within its Timeout or
	// before the deadline of the context passed to Check.
	ErrCheckTimeout = errors.New("timed out")
	// ErrBadHealthCheck: the check's configuration is invalid, so no
	// backend can pass it.
	ErrBadHealthCheck = errors.New("bad health check")
)

// TCPCheck considers a backend healthy when it accepts a connection and,
// with TLS set, completes a TLS handshake. It proves that the process is
// listening (and that its certificate is acceptable), not that it serves
// requests: use HTTPCheck for that.
//
// A TCPCheck is safe for concurrent use. Its fields must not change while
// checks may run.
type TCPCheck struct {
	// Timeout bounds the connect and the handshake together; zero means
	// DefaultCheckTimeout. The deadline of the context given to Check
	// applies too: whichever comes first ends the probe.
	Timeout time.Duration
	// TLS, when set, makes the check complete a TLS handshake with this
	// configuration, certificate verification included unless it sets
	// InsecureSkipVerify. Nil means plain TCP.
	TLS *tls.Config
	// SNI is the server name sent in the handshake and verified in the
	// certificate. Empty means TLS.ServerName when that is set, else the
	// backend's host: a DNS name is sent as SNI; for an IP address no SNI
	// is sent and the certificate must name the IP. A Unix backend has no
	// host, so verifying its certificate needs SNI or TLS.ServerName.
	SNI string
	// ProxyProtocol, when not 0, makes the check start each connection
	// with a PROXY protocol header of that version, saying the
	// connection is the balancer's own (v2 LOCAL, v1 UNKNOWN), for
	// backends that require one from the balancer, as its proxied
	// connections carry (HAProxy's check-send-proxy).
	ProxyProtocol proxyproto.Version
}

var _ HealthCheck = (*TCPCheck)(nil)

// Validate reports a configuration that no backend could pass.
func (c *TCPCheck) Validate() error {
	return validateProbe(c.Timeout, c.TLS, c.SNI)
}

// Check connects to b (and shakes hands when TLS is set), then closes the
// connection. The error names the backend and the step that failed, e.g.
// "connect 127.0.0.1:9: connection refused".
func (c *TCPCheck) Check(ctx context.Context, b *Backend) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if b == nil {
		return errNilBackend
	}
	ctx, cancel, budget := probeContext(ctx, c.Timeout)
	defer cancel()
	host := ""
	if b.Network() == "tcp" {
		host, _ = b.HostPort()
	}
	target := probeTarget{
		network:    b.Network(),
		address:    b.DialAddr(),
		name:       b.Addr,
		tls:        c.TLS,
		serverName: probeServerName(c.SNI, c.TLS, host),
	}
	conn, err := target.open(ctx, announcing(dialProbe, c.ProxyProtocol), budget)
	if err != nil {
		return err
	}
	// The verdict is in. Closing can still fail, e.g. sending TLS's
	// close_notify to a server that hung up first; that says nothing
	// about the backend's health.
	_ = conn.Close()
	return nil
}

// errNilBackend is returned by the checks when handed no backend, which
// is a caller's bug but must not panic a health checker.
var errNilBackend = fmt.Errorf("%w: nil backend", ErrBadAddress)

// validateProbe checks the settings TCPCheck and HTTPCheck share.
func validateProbe(timeout time.Duration, cfg *tls.Config, sni string) error {
	if timeout < 0 {
		return fmt.Errorf("%w: negative timeout %v", ErrBadHealthCheck, timeout)
	}
	if sni != "" && cfg == nil {
		return fmt.Errorf("%w: SNI %q set without TLS", ErrBadHealthCheck, sni)
	}
	return nil
}

// announcing wraps dial so that each connection it opens starts with a
// PROXY protocol header of version v saying the connection is the
// balancer's own; dial itself when v is 0.
func announcing(dial probeDialFunc, v proxyproto.Version) probeDialFunc {
	if v == 0 {
		return dial
	}
	h := proxyproto.Header{Version: v, Command: proxyproto.Local}
	if v == proxyproto.V1 {
		h.Command = proxyproto.Proxy // PROXY UNKNOWN: v1 has no LOCAL
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetWriteDeadline(dl)
		}
		if _, err := h.WriteTo(conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("send the PROXY protocol header: %w", err)
		}
		_ = conn.SetWriteDeadline(time.Time{})
		return conn, nil
	}
}

// probeDialFunc opens a connection, like net.Dialer.DialContext.
type probeDialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// dialProbe is the dialer of the checks: no TCP keep-alive, since a probe
// connection lives for one check or idles between two close together.
func dialProbe(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	return d.DialContext(ctx, network, address)
}

// probeTimeout returns the configured timeout or the default.
func probeTimeout(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return DefaultCheckTimeout
	}
	return timeout
}

// probeContext bounds ctx by timeout (or the default) and returns the time
// actually granted, which is shorter when ctx has an earlier deadline, so
// that a timeout error says how long the probe really had.
func probeContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc, time.Duration) {
	budget := probeTimeout(timeout)
	if deadline, ok := ctx.Deadline(); ok {
		budget = max(min(budget, time.Until(deadline)), 0)
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	return ctx, cancel, budget
}

// probeServerName picks the TLS server name: explicit SNI first, then the
// configured ServerName, then the backend host. crypto/tls sends no SNI
// for an IP address but verifies the certificate against it, which is
// what a backend known by IP needs. An IPv6 zone names a local interface,
// never a certificate, so it is dropped.
func probeServerName(sni string, cfg *tls.Config, host string) string {
	switch {
	case cfg == nil:
		return ""
	case sni != "":
		return sni
	case cfg.ServerName != "":
		return cfg.ServerName
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	return host
}

// probeTarget is where one probe connects and how it secures the
// connection.
type probeTarget struct {
	network, address string
	// name is the backend as errors show it.
	name string
	// tls is nil for plain TCP.
	tls        *tls.Config
	serverName string
}

// open dials the target and completes the TLS handshake if it has one.
// ctx bounds both steps; budget is how long ctx granted, for the message
// of a timeout.
func (t probeTarget) open(ctx context.Context, dial probeDialFunc, budget time.Duration) (net.Conn, error) {
	conn, err := dial(ctx, t.network, t.address)
	if err != nil {
		return nil, probeError("connect "+t.name, budget, err)
	}
	if t.tls == nil {
		return conn, nil
	}
	cfg := t.tls
	if cfg.ServerName != t.serverName {
		cfg = cfg.Clone()
		cfg.ServerName = t.serverName
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, probeError("tls handshake with "+t.name, budget, err)
	}
	return tc, nil
}

// probeError describes a failed probe step. A timeout becomes
// ErrCheckTimeout with the time the probe had, whatever layer noticed it;
// other errors lose the net.OpError and os.SyscallError wrappers, whose
// text repeats what the step already says ("dial tcp 127.0.0.1:9:
// connect:"), but keep their cause for errors.Is.
func probeError(step string, budget time.Duration, err error) error {
	if errors.Is(err, ErrCheckTimeout) {
		return fmt.Errorf("%s: %w", step, err)
	}
	if isProbeTimeout(err) {
		return fmt.Errorf("%s: %w after %v", step, ErrCheckTimeout, budget.Round(time.Millisecond))
	}
	return fmt.Errorf("%s: %w", step, probeCause(err))
}

// isProbeTimeout reports whether err comes from a deadline: the context's
// or the connection's.
func isProbeTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probeCause strips the net.OpError layers of dials, reads and writes,
// and the os.SyscallError under them, off err. Other OpErrors ("remote
// error: tls: bad certificate") say something the cause alone does not.
func probeCause(err error) error {
	for {
		switch e := err.(type) {
		case *net.OpError:
			if e.Err == nil || (e.Op != "dial" && e.Op != "read" && e.Op != "write") {
				return err
			}
			err = e.Err
		case *os.SyscallError:
			if e.Err == nil {
				return err
			}
			err = e.Err
		default:
			return err
		}
	}
}
