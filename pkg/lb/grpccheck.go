package lb

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/net/http2"

	"github.com/weir-lb/weir/pkg/proxyproto"
)

// Errors reported by GRPCCheck, wrapped with the call and the backend.
var (
	// ErrNotServing: the health service answered, with a status other
	// than SERVING (NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN).
	ErrNotServing = errors.New("not serving")
	// ErrGRPCStatus: the call ended with a gRPC status other than OK,
	// e.g. UNIMPLEMENTED from a server without the health service, or
	// NOT_FOUND for a service it does not know.
	ErrGRPCStatus = errors.New("grpc status")
)

// grpcHealthPath is the method of the standard health service
// (grpc/health/v1/health.proto).
const grpcHealthPath = "/grpc.health.v1.Health/Check"

// grpcMaxResponse bounds the response body a GRPCCheck reads: a
// HealthCheckResponse is a few bytes.
const grpcMaxResponse = 16 << 10

// GRPCCheck considers a backend healthy when it answers the standard
// gRPC health check, grpc.health.v1.Health/Check, with SERVING for
// Service. It speaks HTTP/2 itself (golang.org/x/net/http2) and encodes
// the two one-field messages by hand: h2c on plain TCP, or h2 over TLS
// when TLS is set. Each check opens a connection of its own and closes
// it, which also proves the backend still accepts connections.
//
// A GRPCCheck is safe for concurrent use. Its fields must not change
// while checks may run.
type GRPCCheck struct {
	// Service is the service whose health is asked, e.g.
	// "helloworld.Greeter"; empty asks for the server as a whole.
	Service string
	// Port overrides the backend's port, for backends that serve health
	// on a separate port. Zero keeps the backend's; it is ignored for
	// Unix backends.
	Port int
	// TLS, when set, makes the check speak h2 over TLS with this
	// configuration (its NextProtos are replaced by "h2"), certificate
	// verification included unless it sets InsecureSkipVerify. Nil means
	// prior-knowledge HTTP/2 over plain TCP (h2c).
	TLS *tls.Config
	// SNI is the TLS server name, chosen as for TCPCheck.SNI.
	SNI string
	// Timeout bounds the whole check, connect to answer, and is sent as
	// grpc-timeout; zero means DefaultCheckTimeout. The deadline of the
	// context given to Check applies too.
	Timeout time.Duration
	// ProxyProtocol, when not 0, makes the check start each connection
	// with a PROXY protocol header of that version, saying the
	// connection is the balancer's own (v2 LOCAL, v1 UNKNOWN), for
	// backends that require one from the balancer, as its proxied
	// connections carry (HAProxy's check-send-proxy).
	ProxyProtocol proxyproto.Version
}

var _ HealthCheck = (*GRPCCheck)(nil)

// Validate reports a configuration that no backend could pass.
func (c *GRPCCheck) Validate() error {
	if err := validateProbe(c.Timeout, c.TLS, c.SNI); err != nil {
		return err
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("%w: port %d must be 1 to 65535 (0 keeps the backend's)", ErrBadHealthCheck, c.Port)
	}
	return nil
}

// Check calls Health/Check on b and judges the answer. The error says
// what was wrong, e.g. "grpc health check of 127.0.0.1:9000 (service
// "api"): not serving: NOT_SERVING".
func (c *GRPCCheck) Check(ctx context.Context, b *Backend) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if b == nil {
		return errNilBackend
	}
	target, authority, err := c.targetFor(b)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("grpc health check of %s (service %q)", target.name, c.Service)
	ctx, cancel, budget := probeContext(ctx, c.Timeout)
	defer cancel()
	conn, err := target.open(ctx, announcing(dialProbe, c.ProxyProtocol), budget)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol != "h2" {
		return fmt.Errorf("%s: the backend did not negotiate h2 over TLS (ALPN %q)", what, tc.ConnectionState().NegotiatedProtocol)
	}
	// The connection's deadline ends a backend that stalls mid-frame,
	// which the context alone would leave to the transport's goroutines.
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	status, err := c.call(ctx, conn, authority, target.tls != nil, budget)
	if err != nil {
		return fmt.Errorf("%s: %w", what, probeError("call", budget, err))
	}
	if status != grpcServing {
		return fmt.Errorf("%s: %w: %s", what, ErrNotServing, servingStatusName(status))
	}
	return nil
}

// targetFor returns where to connect for b and the :authority to send.
func (c *GRPCCheck) targetFor(b *Backend) (probeTarget, string, error) {
	cfg := c.TLS
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2"}
	}
	if b.Network() == "unix" {
		socket := b.DialAddr()
		return probeTarget{network: "unix", address: socket, name: unixPrefix + socket,
			tls: cfg, serverName: probeServerName(c.SNI, cfg, "")}, "localhost", nil
	}
	host, port := b.HostPort()
	if port == "" {
		return probeTarget{}, "", fmt.Errorf("%w: %q: no port", ErrBadAddress, b.Addr)
	}
	if c.Port != 0 {
		port = strconv.Itoa(c.Port)
	}
	addr := net.JoinHostPort(host, port)
	return probeTarget{network: "tcp", address: addr, name: addr,
		tls: cfg, serverName: probeServerName(c.SNI, cfg, host)}, addr, nil
}

// call sends the request on conn and returns the serving status
// answered, or why there is none.
func (c *GRPCCheck) call(ctx context.Context, conn net.Conn, authority string, overTLS bool, budget time.Duration) (int, error) {
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(conn)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	scheme := "http"
	if overTLS {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: authority, Path: grpcHealthPath}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(grpcHealthRequest(c.Service)))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadHealthCheck, err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", checkUserAgent)
	req.Header.Set("Grpc-Timeout", strconv.FormatInt(max(budget.Milliseconds(), 1), 10)+"m")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%w: HTTP status %d, want 200", ErrGRPCStatus, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, grpcMaxResponse+1))
	if err != nil {
		return 0, err
	}
	if len(body) > grpcMaxResponse {
		return 0, fmt.Errorf("response over %d bytes", grpcMaxResponse)
	}
	// A trailers-only answer carries its status in the head.
	code, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if code == "" {
		code, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if code != "0" {
		if code == "" {
			return 0, fmt.Errorf("%w: none in the answer", ErrGRPCStatus)
		}
		return 0, fmt.Errorf("%w %s: %s", ErrGRPCStatus, code, decodeGRPCMessage(msg))
	}
	return parseHealthResponse(body)
}

// Serving statuses of grpc.health.v1.HealthCheckResponse.
const (
	grpcUnknown        = 0
	grpcServing        = 1
	grpcNotServing     = 2
	grpcServiceUnknown = 3
)

func servingStatusName(s int) string {
	switch s {
	case grpcUnknown:
		return "UNKNOWN"
	case grpcServing:
		return "SERVING"
	case grpcNotServing:
		return "NOT_SERVING"
	case grpcServiceUnknown:
		return "SERVICE_UNKNOWN"
	}
	return "status " + strconv.Itoa(s)
}

// grpcHealthRequest returns a length-prefixed HealthCheckRequest: field
// 1, service, a string (omitted when empty, as proto3 does).
func grpcHealthRequest(service string) []byte {
	var msg []byte
	if service != "" {
		msg = append(msg, 1<<3|2)
		msg = binary.AppendUvarint(msg, uint64(len(service)))
		msg = append(msg, service...)
	}
	out := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

// parseHealthResponse reads the one length-prefixed, uncompressed
// HealthCheckResponse of body and returns its field 1, status; absent,
// it is 0 (UNKNOWN). Unknown fields are skipped.
func parseHealthResponse(body []byte) (int, error) {
	if len(body) < 5 {
		return 0, fmt.Errorf("response of %d bytes, want a message", len(body))
	}
	if body[0] != 0 {
		return 0, errors.New("compressed response, which the check did not accept")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	msg := body[5:]
	if uint64(n) != uint64(len(msg)) {
		return 0, fmt.Errorf("message of %d bytes declared, %d received", n, len(msg))
	}
	status := grpcUnknown
	for len(msg) > 0 {
		key, k := binary.Uvarint(msg)
		if k <= 0 {
			return 0, errors.New("malformed response message")
		}
		msg = msg[k:]
		field, wire := key>>3, key&7
		var v uint64
		switch wire {
		case 0:
			v, k = binary.Uvarint(msg)
		case 1:
			k = 8
		case 5:
			k = 4
		case 2:
			var l uint64
			l, k = binary.Uvarint(msg)
			if k > 0 {
				if l > uint64(len(msg)-k) {
					return 0, errors.New("malformed response message")
				}
				k += int(l)
			}
		default:
			return 0, fmt.Errorf("malformed response message: wire type %d", wire)
		}
		if k <= 0 || k > len(msg) {
			return 0, errors.New("malformed response message")
		}
		msg = msg[k:]
		if field == 1 && wire == 0 {
			status = int(int32(v))
		}
	}
	return status, nil
}

// decodeGRPCMessage undoes grpc-message's percent-encoding, leaving a
// malformed one as it is.
func decodeGRPCMessage(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}
