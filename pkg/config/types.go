package config

import (
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
)

// Defaults of the configuration keys. pkg/config/README.md documents each
// key; these constants are the single source of the values it quotes.
const (
	// DefaultPIDFile is where a daemonised server writes its process id.
	DefaultPIDFile = "/run/weir/weir.pid"
	// DefaultUpgradeSock is the Unix socket over which an old process hands
	// its listening sockets to the new one during a graceful upgrade.
	DefaultUpgradeSock = "/run/weir/upgrade.sock"
	// DefaultGracePeriod bounds how long the old process waits, during an
	// upgrade, for the new one to report ready.
	DefaultGracePeriod = 10 * time.Second
	// DefaultGracefulShutdownTimeout bounds how long in-flight requests may
	// run once the server has stopped accepting.
	DefaultGracefulShutdownTimeout = 15 * time.Second
	// DefaultUpstreamKeepalivePoolSize is the number of idle upstream
	// connections kept per pool key.
	DefaultUpstreamKeepalivePoolSize = 128
	// DefaultMaxRetries is how many other backends a failed request may be
	// retried on.
	DefaultMaxRetries = 2
	// DefaultBPFPinPath is the bpffs directory where weir pins its maps and
	// programs so that they survive an upgrade.
	DefaultBPFPinPath = "/sys/fs/bpf/weir"

	// DefaultRespondStatus is the status code of a respond service.
	DefaultRespondStatus = 200

	// DefaultDNSRefresh is how often DNS discovery resolves its names again.
	DefaultDNSRefresh = 5 * time.Second
	// DefaultDNSNetwork asks DNS discovery for both IPv4 and IPv6 addresses.
	DefaultDNSNetwork = "ip"

	// DefaultCheckInterval is the time between two health checks of a
	// backend.
	DefaultCheckInterval = time.Second
	// DefaultCheckTimeout bounds one health check.
	DefaultCheckTimeout = time.Second
	// DefaultCheckMethod is the request method of an HTTP health check.
	DefaultCheckMethod = "GET"
	// DefaultCheckPath is the request path of an HTTP health check.
	DefaultCheckPath = "/"
	// DefaultCheckExpect is the set of status codes an HTTP health check
	// accepts as healthy.
	DefaultCheckExpect = "200-299"

	// DefaultConnectTimeout bounds connecting (and the TLS handshake) to a
	// backend.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultReadTimeout bounds the wait for the first response byte and
	// every idle gap between reads from a backend.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds every write to a backend.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout bounds an idle downstream keep-alive connection.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultHeaderTimeout bounds how long a client may take to send a whole
	// request head, the defence against slow-header attacks.
	DefaultHeaderTimeout = 10 * time.Second

	// DefaultTLSMinVersion is the lowest TLS version a TLS listener accepts.
	DefaultTLSMinVersion = tls.VersionTLS12
)

// SupportedVersion is the only value of the top-level version key this
// package reads. A future incompatible format will bump it, so that an old
// weir refuses a new file instead of misreading it.
const SupportedVersion = 1

// Config is a parsed and validated weir configuration, with every default
// filled in. Relative file paths are already resolved against the
// configuration file's directory.
type Config struct {
	// Version is the file format version (key version, required, must be 1).
	Version int
	// Threads is the number of worker threads (key threads, at least 1,
	// default runtime.NumCPU()).
	Threads int
	// Daemon detaches the server from the terminal (key daemon, default
	// false).
	Daemon bool
	// PIDFile is where the daemon writes its process id (key pid_file,
	// default DefaultPIDFile).
	PIDFile string
	// ErrorLog is the file the server logs to (key error_log, or its
	// path); empty means standard error.
	ErrorLog string
	// ErrorLogLevel is the least severe level logged (error_log.level,
	// default LogInfo).
	ErrorLogLevel LogLevel
	// ErrorLogFormat is how log lines are written (error_log.format,
	// default LogText).
	ErrorLogFormat LogFormat
	// UpgradeSock is the socket for graceful upgrades (key upgrade_sock,
	// default DefaultUpgradeSock).
	UpgradeSock string
	// User and Group are the identity the server drops to after binding its
	// sockets (keys user and group); empty means keep the current one.
	User  string
	Group string
	// GracePeriod is how long the old process waits during an upgrade for
	// the new one to report ready before giving up (key
	// grace_period_seconds, default 10). It is kept as written; weir's
	// upgrade waits at least 5 s whatever it says (cmd/weir), so 0 does
	// not make every upgrade fail.
	GracePeriod time.Duration
	// GracefulShutdownTimeout bounds finishing in-flight requests after
	// accepting stops (key graceful_shutdown_timeout_seconds, default 15).
	GracefulShutdownTimeout time.Duration
	// UpstreamKeepalivePoolSize is the number of idle connections kept per
	// upstream pool key (key upstream_keepalive_pool_size, default 128;
	// 0 disables connection reuse).
	UpstreamKeepalivePoolSize int
	// MaxRetries is how many times a request that failed to connect is
	// retried on another backend (key max_retries, default 2).
	MaxRetries int
	// CAFile is an extra CA bundle trusted for upstream TLS, on top of the
	// system roots (key ca_file).
	CAFile string
	// BPF holds the eBPF data plane settings (key bpf).
	BPF BPF
	// Admin is the admin endpoint (key admin); nil when not configured,
	// and then no metrics are counted.
	Admin *Admin
	// Services are the services, in file order (key services, at least one).
	Services []Service
}

// BPF is the eBPF data plane's settings.
type BPF struct {
	// PinPath is the bpffs directory for pinned maps and programs (key
	// pin_path, default DefaultBPFPinPath).
	PinPath string
	// TCPIdleTimeout, UDPIdleTimeout and TCPClosedTimeout are how long a
	// flow through the BPF data plane must stay silent before its SNAT
	// port may go to another flow: an open TCP flow, a UDP flow, a TCP flow
	// that has seen an RST or a FIN each way (keys tcp_idle_timeout,
	// udp_idle_timeout, tcp_closed_timeout; 0 means the data plane's
	// defaults of 2h4m, 2m and 2s).
	TCPIdleTimeout, UDPIdleTimeout, TCPClosedTimeout time.Duration
}

// The range of the BPF flow timeouts. The data plane refreshes a flow's
// last-seen time once a second, so below 2 s a live flow could look idle;
// pkg/dataplane enforces the same bounds.
const (
	MinFlowTimeout = 2 * time.Second
	MaxFlowTimeout = 24 * time.Hour
)

// Kind is what a service does.
type Kind string

// The service kinds.
const (
	// KindHTTPProxy proxies HTTP requests to an upstream.
	KindHTTPProxy Kind = "http_proxy"
	// KindRespond answers every request itself with a fixed response; it
	// serves as a test backend, a maintenance page or a health endpoint.
	KindRespond Kind = "respond"
	// KindL4 balances TCP connections or UDP flows addressed to a virtual
	// IP, in user space or in eBPF.
	KindL4 Kind = "l4"
)

// Service is one entry of the services list.
type Service struct {
	// Pos is where the service's mapping starts.
	Pos Position
	// Name identifies the service in logs and metrics (required, unique,
	// [a-z0-9_-]+).
	Name string
	// Kind is what the service does (required).
	Kind Kind
	// Listeners are the addresses the service accepts on (http_proxy and
	// respond services; at least one).
	Listeners []Listener
	// Respond is the fixed response of a respond service, nil otherwise.
	Respond *Respond
	// Upstream is where an http_proxy or l4 service sends traffic, nil for
	// a respond service.
	Upstream *Upstream
	// L4 holds the settings of an l4 service, nil otherwise.
	L4 *L4
	// AccessLog is where and how the service logs each request (key
	// access_log, http_proxy and respond services); nil: no access log.
	AccessLog *AccessLog
	// RequestID makes the service give every request an id (key
	// request_id, default true): the client's X-Request-Id when valid,
	// else a new one, sent upstream, in the response and in the logs.
	RequestID bool
}

// AccessLog is a service's access log.
type AccessLog struct {
	// Pos is where the access_log key is written.
	Pos Position
	// Path is the file lines are appended to, or "stderr" or "stdout"
	// (key path, or access_log's value when it is a string).
	Path string
	// Format is how each line is written (key format: combined, json or
	// a template of $fields; default combined).
	Format *accesslog.Format
}

// Admin is the admin endpoint: Prometheus metrics, the status page and
// API, and runtime control (key admin).
type Admin struct {
	// Pos is where the admin mapping starts.
	Pos Position
	// Listen are the addresses the endpoint serves on (key listen, one
	// address or a list): "127.0.0.1:PORT", "[::1]:PORT", any other
	// ip:port (only with a token), or "unix:/path".
	Listen []AdminListen
	// TokenFile holds the bearer token that mutating requests (and every
	// request on a non-loopback address) must present (key token_file);
	// empty: no token.
	TokenFile string
}

// AdminListen is one address of the admin endpoint.
type AdminListen struct {
	// Pos is where the address is written.
	Pos Position
	// Network is "tcp" or "unix".
	Network string
	// Addr is the normalised "ip:port" or "[ipv6]:port", or the socket's
	// absolute path.
	Addr string
}

// Loopback reports whether the address is reachable from this host only:
// a Unix socket, or a TCP address on a loopback IP.
func (a AdminListen) Loopback() bool {
	if a.Network == "unix" {
		return true
	}
	ap, err := netip.ParseAddrPort(a.Addr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Listener is one address a service accepts connections on.
type Listener struct {
	// Pos is where the listen entry is written.
	Pos Position
	// Addr is the normalised "ip:port" or "[ipv6]:port".
	Addr string
	// TLS makes the listener terminate TLS; nil for plain TCP.
	TLS *ListenerTLS
}

// ListenerTLS is the TLS setup of a listener.
type ListenerTLS struct {
	// Certs are the certificates offered, chosen by the client's SNI (at
	// least one; the first one serves clients that send no SNI).
	Certs []Cert
	// MinVersion is the lowest TLS version accepted, a crypto/tls
	// constant (key min_version, "1.2" or "1.3", default "1.2").
	MinVersion uint16
}

// Cert is a certificate chain and its private key, both PEM files that
// tls.LoadX509KeyPair accepted when the configuration was parsed.
type Cert struct {
	// Pos is where the cert key is written.
	Pos      Position
	CertFile string
	KeyFile  string
}

// Respond is the fixed response of a respond service.
type Respond struct {
	// Status is the status code (key status, 100 to 599, default 200).
	Status int
	// Body is the response body (key body, default empty), with every
	// "{service}" already replaced by the service name.
	Body string
	// Headers are added to the response (key headers).
	Headers map[string]string
}

// Protocol is the transport an l4 service balances.
type Protocol string

// The l4 protocols.
const (
	ProtocolTCP Protocol = "tcp"
	ProtocolUDP Protocol = "udp"
)

// Dataplane is where an l4 service forwards packets.
type Dataplane string

// The l4 data planes.
const (
	// DataplaneAuto uses eBPF when the kernel and privileges allow it and
	// falls back to user space otherwise.
	DataplaneAuto Dataplane = "auto"
	// DataplaneBPF forwards in an XDP/TC program and fails to start
	// without it.
	DataplaneBPF Dataplane = "bpf"
	// DataplaneUserspace proxies connections in the weir process.
	DataplaneUserspace Dataplane = "userspace"
)

// L4 is the settings of an l4 service.
type L4 struct {
	// Pos is where the vip value is written.
	Pos Position
	// Protocol is tcp or udp (required).
	Protocol Protocol
	// VIP is the virtual "ip:port" clients connect to (required).
	VIP string
	// Interface is the network interface the eBPF program attaches to
	// (required when Dataplane is bpf).
	Interface string
	// Dataplane selects eBPF or user-space forwarding (default auto).
	Dataplane Dataplane
}

// Selection names a load-balancing algorithm.
type Selection string

// The selection algorithms.
const (
	SelectRoundRobin  Selection = "round_robin"
	SelectRandom      Selection = "random"
	SelectFNV         Selection = "fnv"
	SelectConsistent  Selection = "consistent"
	SelectMaglev      Selection = "maglev"
	SelectLeastLoaded Selection = "least_loaded"
)

// Hashed reports whether the algorithm picks a backend from a hash of the
// request, and so uses a hash key.
func (s Selection) Hashed() bool {
	return s == SelectFNV || s == SelectConsistent || s == SelectMaglev
}

// HashKeyKind says which part of a request is hashed.
type HashKeyKind string

// The hash key kinds.
const (
	HashClientIP HashKeyKind = "client_ip"
	HashURI      HashKeyKind = "uri"
	HashHeader   HashKeyKind = "header"
	HashCookie   HashKeyKind = "cookie"
	HashQuery    HashKeyKind = "query"
)

// HashKey is the part of a request a hashed selection hashes.
type HashKey struct {
	Kind HashKeyKind
	// Name is the header (in canonical form), cookie or query parameter
	// name; empty for client_ip and uri.
	Name string
}

// String returns the key as written in the configuration.
func (k HashKey) String() string {
	if k.Name == "" {
		return string(k.Kind)
	}
	return string(k.Kind) + ":" + k.Name
}

// Upstream is the set of backends a service forwards to and how.
type Upstream struct {
	// Pos is where the upstream mapping starts.
	Pos Position
	// Backends is the static backend list (key backends); empty with DNS
	// discovery.
	Backends []BackendSpec
	// Discovery says where backends come from (key discovery).
	Discovery Discovery
	// Selection is the balancing algorithm (key selection, default
	// round_robin, maglev for l4 services).
	Selection Selection
	// HashKey is what a hashed selection hashes (key hash_key, default
	// client_ip); the zero value for other selections and l4 services.
	HashKey HashKey
	// Host is the Host header sent upstream (key host); empty forwards the
	// client's.
	Host string
	// TLS, when set, makes connections to the backends use TLS (key tls).
	TLS *TLSClient
	// HealthCheck probes the backends (key health_check); nil means no
	// active checks: every backend counts as healthy.
	HealthCheck *HealthCheck
	// Timeouts bound the phases of a proxied request (key timeouts).
	Timeouts Timeouts
	// ForwardedHeaders sets X-Forwarded-For, -Proto and -Host on proxied
	// requests (key forwarded_headers, default true; false for l4).
	ForwardedHeaders bool
}

// BackendSpec is one static backend as written in the configuration.
type BackendSpec struct {
	// Pos is where the backend entry is written.
	Pos Position
	// Addr is the address normalised by lb.ParseAddr.
	Addr string
	// Weight is the relative share of traffic (1 to lb.MaxWeight, default 1).
	Weight int
	// Metadata is free-form data attached to the backend (key metadata).
	Metadata map[string]string
}

// DiscoveryType says where backends come from.
type DiscoveryType string

// The discovery types.
const (
	// DiscoveryStatic uses the backends list.
	DiscoveryStatic DiscoveryType = "static"
	// DiscoveryDNS resolves names every refresh interval.
	DiscoveryDNS DiscoveryType = "dns"
)

// Discovery says where an upstream's backends come from.
type Discovery struct {
	// Pos is where the discovery mapping starts, or the upstream's position
	// when the key is absent.
	Pos Position
	// Type is static (default) or dns.
	Type DiscoveryType
	// Names are the DNS names to resolve: "host:port" (A/AAAA records) or
	// "_service._proto.name" (SRV records, which carry ports and weights).
	Names []string
	// Refresh is the time between two resolutions (default 5s; dns only).
	Refresh time.Duration
	// Server is the DNS server "ip:port"; empty uses the system resolver.
	Server string
	// Network is ip (default), ip4 or ip6: which address families to ask
	// for (dns only).
	Network string
}

// ALPN is the application protocol negotiated with TLS backends.
type ALPN string

// The ALPN choices.
const (
	// ALPNH1 speaks HTTP/1.1 only.
	ALPNH1 ALPN = "h1"
	// ALPNH2 speaks HTTP/2 only.
	ALPNH2 ALPN = "h2"
	// ALPNH2H1 offers HTTP/2 and falls back to HTTP/1.1.
	ALPNH2H1 ALPN = "h2h1"
)

// TLSClient is the TLS setup for connections to backends.
type TLSClient struct {
	// Pos is where the tls mapping starts.
	Pos Position
	// SNI is the server name sent and verified (key sni). Default: the
	// upstream's host key when set; empty otherwise, in which case the
	// proxy uses the backend's host name when it is a DNS name.
	SNI string
	// Verify checks the backend's certificate (key verify, default true).
	Verify bool
	// CAFile is a CA bundle trusted for this upstream only (key ca_file).
	CAFile string
	// ALPN is the protocol offered (key alpn, default h1).
	ALPN ALPN
}

// CheckType is the kind of health check.
type CheckType string

// The health check types.
const (
	// CheckTCP passes when a connection opens.
	CheckTCP CheckType = "tcp"
	// CheckHTTP passes when an HTTP request gets an expected response.
	CheckHTTP CheckType = "http"
)

// InitialHealth is a new backend's health before its first check.
type InitialHealth string

// The initial health values.
const (
	InitiallyHealthy   InitialHealth = "healthy"
	InitiallyUnhealthy InitialHealth = "unhealthy"
)

// HealthCheck is an upstream's active health check.
type HealthCheck struct {
	// Pos is where the health_check mapping starts.
	Pos Position
	// Type is tcp (default) or http.
	Type CheckType
	// Interval is the time between two checks of a backend (default 1s);
	// zero means check once at start ("0" or "once" in the file).
	Interval time.Duration
	// Timeout bounds one check (default 1s); at most Interval.
	Timeout time.Duration
	// ConsecutiveSuccess is how many passes in a row make an unhealthy
	// backend healthy (default 1).
	ConsecutiveSuccess int
	// ConsecutiveFailure is how many failures in a row make a healthy
	// backend unhealthy (default 1).
	ConsecutiveFailure int
	// Initially is a new backend's health before its first check
	// (default healthy).
	Initially InitialHealth
	// Parallel checks all backends at once rather than one after another
	// (default true).
	Parallel bool
	// HTTP holds the request and expectations of an http check; nil for a
	// tcp check.
	HTTP *HTTPCheck
}

// HTTPCheck is the request an http health check sends and what it expects.
type HTTPCheck struct {
	// Method is the request method (default GET).
	Method string
	// Path is the request target (default "/").
	Path string
	// Host is the Host header; empty sends the backend's address.
	Host string
	// Headers are added to the request.
	Headers map[string]string
	// Expect is the healthy status codes, as written: a comma-separated
	// list of codes and ranges such as "200-299,304" (default 200-299).
	Expect string
	// BodyContains, when set, must occur in the response body.
	BodyContains string
	// Port is the port to check; 0 uses the backend's port.
	Port int
	// TLS makes the check use TLS.
	TLS bool
	// SNI is the server name of a TLS check; empty sends none.
	SNI string
}

// Timeouts bound the phases of a proxied request.
type Timeouts struct {
	// Connect bounds connecting to a backend (default 2s).
	Connect time.Duration
	// Read bounds the wait for the first response byte and each idle gap
	// between reads (default 60s).
	Read time.Duration
	// Write bounds each write to a backend (default 60s).
	Write time.Duration
	// Idle bounds an idle downstream keep-alive connection (default 60s).
	Idle time.Duration
	// Header is the time a client has to send its whole request head
	// (default 10s; 0 for l4 services, which read no HTTP).
	Header time.Duration
}

// LogLevel is the least severe level of the lines weir logs.
type LogLevel string

// The log levels, most verbose first.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// LogFormat is how weir writes its log lines.
type LogFormat string

const (
	// LogText writes key=value lines (log/slog's text format).
	LogText LogFormat = "text"
	// LogJSON writes one JSON object a line.
	LogJSON LogFormat = "json"
)
