package config

import (
	"math"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// topKeys are the keys of the top-level mapping, most used first (the
// order decides ties between "did you mean" suggestions).
var topKeys = []string{
	"version", "threads", "daemon", "pid_file", "error_log", "upgrade_sock",
	"user", "group", "grace_period_seconds", "graceful_shutdown_timeout_seconds",
	"upstream_keepalive_pool_size", "max_retries", "ca_file", "bpf", "admin",
	"bgp", "upstreams", "services",
}

// maxUnixSocketPath is the longest path a Unix socket address holds on
// Linux (sun_path is 108 bytes including the terminating NUL).
const maxUnixSocketPath = 107

// config reads the top-level mapping.
func (p *parser) config(root *yaml.Node) *Config {
	cfg := &Config{
		Threads:                   p.numCPU,
		PIDFile:                   DefaultPIDFile,
		UpgradeSock:               DefaultUpgradeSock,
		GracePeriod:               DefaultGracePeriod,
		GracefulShutdownTimeout:   DefaultGracefulShutdownTimeout,
		UpstreamKeepalivePoolSize: DefaultUpstreamKeepalivePoolSize,
		MaxRetries:                DefaultMaxRetries,
		BPF:                       BPF{PinPath: DefaultBPFPinPath, Attach: AttachTC},
		ErrorLogLevel:             LogInfo,
		ErrorLogFormat:            LogText,
	}
	m := p.newMapping(root, "", topKeys, true)
	if m == nil {
		return cfg
	}
	p.version(m, cfg)
	m.integer("threads", &cfg.Threads, 1, math.MaxInt)
	m.boolean("daemon", &cfg.Daemon)
	m.file("pid_file", &cfg.PIDFile)
	if n := m.get("error_log"); n != nil {
		p.errorLog(n, cfg)
	}
	if m.file("upgrade_sock", &cfg.UpgradeSock) && len(cfg.UpgradeSock) > maxUnixSocketPath {
		p.errorf(m.get("upgrade_sock"), "upgrade_sock", "path %s is %d bytes long, and a Unix socket path is at most %d; choose a shorter one",
			quote(cfg.UpgradeSock), len(cfg.UpgradeSock), maxUnixSocketPath)
	}
	m.str("user", &cfg.User)
	m.str("group", &cfg.Group)
	m.seconds("grace_period_seconds", &cfg.GracePeriod)
	m.seconds("graceful_shutdown_timeout_seconds", &cfg.GracefulShutdownTimeout)
	m.integer("upstream_keepalive_pool_size", &cfg.UpstreamKeepalivePoolSize, 0, math.MaxInt)
	m.integer("max_retries", &cfg.MaxRetries, 0, math.MaxInt)
	if m.file("ca_file", &cfg.CAFile) {
		p.checkCAFile(m.get("ca_file"), "ca_file", cfg.CAFile)
	}
	if n := m.get("bpf"); n != nil {
		cfg.BPF = p.bpf(n)
	}
	cfg.Upstreams = p.upstreams(m)
	cfg.Services = p.services(m)
	resolveSNAT(cfg)
	p.checkPoolNames(cfg.Services)
	p.warnUnusedPools()
	if n := m.get("admin"); n != nil {
		// After the services, whose addresses the admin ones must avoid.
		cfg.Admin = p.admin(n, cfg.UpgradeSock)
	}
	if n := m.get("bgp"); n != nil {
		cfg.BGP = p.bgp(n)
	}
	p.checkAnnounce(cfg)
	return cfg
}

// errorLog reads error_log: a path, or a mapping of path, level and
// format.
func (p *parser) errorLog(n *yaml.Node, cfg *Config) {
	if n.Kind != yaml.MappingNode {
		if path, ok := p.str(n, "error_log"); ok && path != "" {
			cfg.ErrorLog = p.resolvePath(path)
		}
		return
	}
	m := p.mapping(n, "error_log", []string{"path", "level", "format"})
	if m == nil {
		return
	}
	var path string
	if m.str("path", &path) && path != "" {
		cfg.ErrorLog = p.resolvePath(path)
	}
	enumField(m, "level", &cfg.ErrorLogLevel, LogDebug, LogInfo, LogWarn, LogError)
	enumField(m, "format", &cfg.ErrorLogFormat, LogText, LogJSON)
}

// version checks the required version key.
func (p *parser) version(m *mapping, cfg *Config) {
	n := m.get("version")
	if n == nil {
		m.missing("version", "add \"version: 1\" at the top of the file")
		return
	}
	v, ok := p.integer(n, "version", "an integer")
	if !ok {
		return
	}
	if v != SupportedVersion {
		p.errorf(n, "version", "%d is not supported; this weir reads version %d files", v, SupportedVersion)
		return
	}
	cfg.Version = v
}

// bpf reads the bpf mapping.
func (p *parser) bpf(n *yaml.Node) BPF {
	b := BPF{PinPath: DefaultBPFPinPath, Attach: AttachTC}
	m := p.mapping(n, "bpf", []string{"pin_path", "tcp_idle_timeout", "udp_idle_timeout", "tcp_closed_timeout", "snat",
		"attach", "interfaces"})
	if m == nil {
		return b
	}
	var pin string
	if m.nonEmpty("pin_path", &pin) {
		if !filepath.IsAbs(pin) {
			p.errorf(m.get("pin_path"), "bpf.pin_path", "%s is relative; give an absolute directory on a bpffs mount, such as %s", quote(pin), DefaultBPFPinPath)
		} else {
			b.PinPath = filepath.Clean(pin)
		}
	}
	m.flowTimeout("tcp_idle_timeout", &b.TCPIdleTimeout)
	m.flowTimeout("udp_idle_timeout", &b.UDPIdleTimeout)
	m.flowTimeout("tcp_closed_timeout", &b.TCPClosedTimeout)
	if b.TCPIdleTimeout > 0 && b.TCPClosedTimeout > b.TCPIdleTimeout {
		p.errorf(m.get("tcp_closed_timeout"), "bpf.tcp_closed_timeout",
			"%v exceeds tcp_idle_timeout %v; a closed flow is more surely over than an open one", b.TCPClosedTimeout, b.TCPIdleTimeout)
	}
	if sn := m.get("snat"); sn != nil {
		b.SNAT = p.snat(sn, "bpf.snat")
	}
	enumField(m, "attach", &b.Attach, attachKeys...)
	if in := m.get("interfaces"); in != nil {
		b.Interfaces = p.bpfInterfaces(in, b.Attach)
	}
	return b
}

// flowTimeout reads one of the BPF flow timeouts, within their range.
func (m *mapping) flowTimeout(key string, dst *time.Duration) {
	var d time.Duration
	if !m.duration(key, &d, true) {
		return
	}
	if d < MinFlowTimeout || d > MaxFlowTimeout {
		m.p.errorf(m.get(key), m.at(key), "%v is outside %v to %v", d, MinFlowTimeout, MaxFlowTimeout)
		return
	}
	*dst = d
}
