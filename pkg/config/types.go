package config

import (
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
	"github.com/weir-lb/weir/pkg/retry"
	"github.com/weir-lb/weir/pkg/route"
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

	// DefaultProxyProtocolTimeout bounds how long a listener that expects
	// PROXY protocol headers waits for one.
	DefaultProxyProtocolTimeout = proxyproto.DefaultTimeout

	// DefaultRedirectStatus is the status code of a redirect route.
	DefaultRedirectStatus = 301
	// DefaultStickySameSite is the SameSite attribute of a sticky cookie.
	DefaultStickySameSite = SameSiteLax
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
	// BGP is the BGP speaker that announces the VIPs of the l4 services
	// with announce (key bgp); nil when not configured.
	BGP *BGP
	// Upstreams are the named pools of key upstreams, by name; services
	// and routes refer to them with upstream: NAME.
	Upstreams map[string]*Upstream
	// Services are the services, in file order (key services, at least one).
	Services []Service
	// Warnings are what is valid but almost certainly not meant, such as
	// a route that can never match, in file order.
	Warnings []Warning
}

// Warning is something valid in a configuration that is almost certainly
// a mistake; weir -t prints warnings and weir logs them when it starts.
type Warning struct {
	// Pos is where the questionable key or value is written.
	Pos Position
	// Message says what is wrong and what to do.
	Message string
}

// String formats the warning as "FILE:LINE:COL: warning: message".
func (w Warning) String() string {
	return w.Pos.String() + ": warning: " + w.Message
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
	// SNAT is the default SNAT of every l4 service on the BPF data plane
	// (key snat): its address for the services of its family, its ports
	// for all.
	SNAT SNAT
	// Attach is the hook the program runs at on every interface it
	// attaches to (key attach, default AttachTC), but those in Interfaces.
	Attach Attach
	// Interfaces are per-interface settings (key interfaces), by name;
	// nil when none are given. AttachOn reads an interface's hook.
	Interfaces map[string]BPFInterface
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
	// Upstream is where an http_proxy or l4 service sends traffic: its
	// inline upstream block, or the named pool its upstream: NAME refers
	// to (the same *Upstream as in Config.Upstreams). Nil for a respond
	// service and for an http_proxy service with routes.
	Upstream *Upstream
	// Routes are an http_proxy service's routes (key routes), in order:
	// the first that matches a request takes it. Nil with upstream.
	Routes []Route
	// L4 holds the settings of an l4 service, nil otherwise.
	L4 *L4
	// AccessLog is where and how the service logs each request (key
	// access_log, http_proxy and respond services); nil: no access log.
	AccessLog *AccessLog
	// RequestID makes the service give every request an id (key
	// request_id, default true): the client's X-Request-Id when valid,
	// else a new one, sent upstream, in the response and in the logs.
	RequestID bool
	// Limits are what the service allows each client (key limits,
	// http_proxy and respond services); nil: only the default head
	// limits.
	Limits *Limits
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
	// ProxyProtocol makes the listener read a PROXY protocol header (v1
	// or v2) from the peers it trusts (key proxy_protocol); nil reads
	// none. Trusted (key trusted, required, at least one; an address
	// alone is a /32 or /128) are the peers whose connections must start
	// with a header; connections from other peers carry none and are
	// served as they come, their peer being the client. Timeout (key
	// timeout, default 5s) bounds the wait for the header.
	ProxyProtocol *proxyproto.Policy
	// MaxConnections bounds the listener's open connections (key
	// max_connections, at least 1); 0 sets no limit. At the limit weir
	// stops accepting: new connections wait in the kernel's listen queue
	// until one closes.
	MaxConnections int
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
	// SNAT is the BPF data plane's source towards the backends (key snat,
	// completed from bpf.snat and the defaults); zero with dataplane:
	// userspace, which it does not apply to. With forwarding: dsr its
	// address is the tunnel's source and it has no ports.
	SNAT SNAT
	// Forwarding is nat (the default) or dsr (key forwarding).
	Forwarding Forwarding
	// Encap is the tunnel of forwarding: dsr (key encap): ipip or gue;
	// empty with nat.
	Encap Encap
	// GUEPort is the UDP port the backends take GUE on (key gue_port,
	// default DefaultGUEPort) with encap: gue; zero otherwise.
	GUEPort int
	// Announce, when not nil, announces the vip's address by BGP while
	// the service has enough usable backends (key announce; needs the
	// top-level bgp block).
	Announce *Announce
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

// Upstream is the set of backends a service forwards to and how.
type Upstream struct {
	// Pos is where the upstream mapping starts.
	Pos Position
	// Name is the pool's name under upstreams; empty for an inline block.
	Name string
	// Backends is the static backend list (key backends); empty with DNS
	// discovery.
	Backends []BackendSpec
	// Discovery says where backends come from (key discovery).
	Discovery Discovery
	// Selection is the balancing algorithm (key selection, default
	// round_robin, maglev for l4 services).
	Selection Selection
	// HashKey is what a hashed selection hashes (key hash_key, default
	// client_ip), in the form pkg/l7 uses; the zero value (l7.KeyNone)
	// for other selections and l4 services. Header names are canonical.
	HashKey l7.HashKey
	// Host is the Host header sent upstream (key host); empty forwards the
	// client's.
	Host string
	// TLS, when set, makes connections to the backends use TLS (key tls).
	TLS *TLSClient
	// ALPN is the protocol spoken to plaintext backends (key alpn): h1
	// (the default) or h2c, HTTP/2 with prior knowledge. With TLS,
	// TLS.ALPN chooses instead, and this is h1.
	ALPN ALPN
	// ProxyProtocol, when set, makes each connection to a backend start
	// with a PROXY protocol header carrying the client's address (key
	// proxy_protocol, v1 or v2).
	ProxyProtocol ProxyProtocolVersion
	// Sticky, when set, pins each client to a backend with a cookie (key
	// sticky, http_proxy only).
	Sticky *Sticky
	// HealthCheck probes the backends (key health_check); nil means no
	// active checks: every backend counts as healthy.
	HealthCheck *HealthCheck
	// Timeouts bound the phases of a proxied request (key timeouts).
	Timeouts Timeouts
	// ForwardedHeaders sets X-Forwarded-For, -Proto and -Host on proxied
	// requests (key forwarded_headers, default true; false for l4).
	ForwardedHeaders bool
	// Outlier, when set, turns on passive health (key
	// outlier_detection, http_proxy only): backends that fail the
	// requests sent to them are ejected for a while. Every default is
	// filled in, from pkg/lb's.
	Outlier *lb.OutlierDetection
	// SlowStart, when positive, ramps the share of a backend that joins
	// or comes back over this long (key slow_start; not with a hashing
	// selection, which lb does not ramp).
	SlowStart time.Duration
	// Limits, when set, bounds each backend's requests in flight and
	// queues the excess (keys max_connections_per_backend, a backend's
	// max_connections, queue; http_proxy only). Nil when no backend has
	// a limit.
	Limits *ConnLimits
	// Retry, when set, is the pool's retry policy (key retry): which
	// failed attempts of an HTTP request are tried again, how often, and
	// the budget that caps them. It governs every request to the pool
	// (where a route sets none) instead of max_retries. Nil: only
	// connection failures are retried, max_retries times.
	Retry *retry.Policy
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
	// Backup marks a backup backend (key backup): it serves only when no
	// other backend can.
	Backup bool
	// MaxConnections bounds the requests in flight to this backend (key
	// max_connections, http_proxy only); 0: the pool's
	// max_connections_per_backend.
	MaxConnections int
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
	// ALPNH2C speaks HTTP/2 with prior knowledge over plain TCP (RFC
	// 9113, section 3.3): pool-level alpn only, without tls.
	ALPNH2C ALPN = "h2c"
)

// ProxyProtocolVersion is a PROXY protocol version; empty sends none.
type ProxyProtocolVersion string

// The PROXY protocol versions.
const (
	// ProxyV1 is the text header ("PROXY TCP4 ...\r\n").
	ProxyV1 ProxyProtocolVersion = "v1"
	// ProxyV2 is the binary header.
	ProxyV2 ProxyProtocolVersion = "v2"
)

// SameSite is the SameSite attribute of a cookie.
type SameSite string

// The SameSite values.
const (
	SameSiteLax    SameSite = "lax"
	SameSiteStrict SameSite = "strict"
	SameSiteNone   SameSite = "none"
)

// Sticky is cookie-based session affinity: the first response to a
// client sets a cookie naming its backend, and later requests carrying
// it go to that backend while it is healthy.
type Sticky struct {
	// Pos is where the sticky mapping starts.
	Pos Position
	// Cookie is the cookie's name (key cookie, required).
	Cookie string
	// TTL is the cookie's lifetime (key ttl); zero makes a session cookie,
	// which the browser drops when it closes.
	TTL time.Duration
	// Secure sends the cookie over HTTPS only (key secure, default false).
	Secure bool
	// HTTPOnly hides the cookie from scripts (key http_only, default true).
	HTTPOnly bool
	// SameSite is the cookie's SameSite attribute (key same_site, default
	// lax).
	SameSite SameSite
	// SecretFile is the file holding the secret that keys the backend
	// ids in the cookie (key secret_file); empty: none.
	SecretFile string
	// Secret is the secret read from SecretFile, its final newline
	// dropped: at least 16 bytes, or nil without SecretFile. Every node
	// given the same secret names a backend alike.
	Secret []byte
}

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
	// CheckGRPC passes when the gRPC health service (grpc.health.v1)
	// answers SERVING.
	CheckGRPC CheckType = "grpc"
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
	// HTTP holds the request and expectations of an http check; nil for
	// other types.
	HTTP *HTTPCheck
	// GRPC holds the settings of a grpc check; nil for other types.
	GRPC *GRPCCheck
}

// GRPCCheck is what a grpc health check asks: grpc.health.v1.Health/Check
// for a service, over HTTP/2.
type GRPCCheck struct {
	// Service is the service name asked about (key service); empty asks
	// about the server as a whole.
	Service string
	// Port is the port to check; 0 uses the backend's port.
	Port int
	// TLS makes the check use TLS; without it the check speaks h2c.
	TLS bool
	// SNI is the server name of a TLS check; empty sends none.
	SNI string
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
	// Expect is the healthy status codes (key expect, default 200-299),
	// parsed by lb.ParseStatusSet: codes, ranges and classes such as
	// "200-299,304" or "2xx".
	Expect lb.StatusSet
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

// Route is one entry of an http_proxy service's routes: the route as
// pkg/route takes it, and the settings that belong to the proxying
// rather than to the routing table.
type Route struct {
	// Pos is where the route's mapping starts.
	Pos Position
	// Route is the route: its name (default its index), match, action,
	// rewrite, header rules and retries (MaxRetries is -1 unless
	// max_retries is set). Route.Upstream names a pool of
	// Config.Upstreams.
	Route route.Route
	// Timeouts override the pool's connect, read and write timeouts for
	// this route's requests (key timeouts); zero inherits the pool's.
	Timeouts RouteTimeouts
	// Compress compresses the route's responses (key compress), with
	// every default of pkg/compress filled in; nil leaves them as they
	// are.
	Compress *compress.Policy
	// Retry is the route's own retry policy (key retry), which stands
	// instead of its pool's; nil: the pool's.
	Retry *retry.Policy
}

// RouteTimeouts are a route's overrides of its pool's timeouts; zero
// keeps the pool's.
type RouteTimeouts struct {
	Connect, Read, Write time.Duration
}
