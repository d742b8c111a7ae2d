package config

import (
	"fmt"
	"github.com/weir-lb/weir/internal/httpsyntax"
	"math"
	"strconv"
	"strings"

	"github.com/weir-lb/weir/pkg/lb"
	"gopkg.in/yaml.v3"
)

// checkKeys are the keys of a health_check mapping. httpOnlyKeys are
// those only an http check uses, grpcOnlyKeys those only a grpc check
// uses, and probeKeys those both use.
var (
	checkKeys = []string{
		"type", "interval", "timeout", "consecutive_success", "consecutive_failure",
		"initially", "parallel",
		"method", "path", "host", "headers", "expect", "body_contains", "port", "tls", "sni",
		"service",
	}
	httpOnlyKeys = []string{"method", "path", "host", "headers", "expect", "body_contains"}
	grpcOnlyKeys = []string{"service"}
	probeKeys    = []string{"port", "tls", "sni"}
)

// maxPort is the largest TCP or UDP port.
const maxPort = math.MaxUint16

// once is the interval value that checks each backend only at start.
const once = "once"

// healthCheck reads a health_check mapping.
func (p *parser) healthCheck(n *yaml.Node, path string) *HealthCheck {
	m := p.mapping(n, path, checkKeys)
	if m == nil {
		return nil
	}
	h := &HealthCheck{
		Pos:                p.pos(m.node),
		Type:               CheckTCP,
		Interval:           DefaultCheckInterval,
		Timeout:            DefaultCheckTimeout,
		ConsecutiveSuccess: 1,
		ConsecutiveFailure: 1,
		Initially:          InitiallyHealthy,
		Parallel:           true,
	}
	typeKnown := enumField(m, "type", &h.Type, CheckTCP, CheckHTTP, CheckGRPC) || !m.has("type")
	p.checkTiming(m, h)
	m.integer("consecutive_success", &h.ConsecutiveSuccess, 1, math.MaxInt)
	m.integer("consecutive_failure", &h.ConsecutiveFailure, 1, math.MaxInt)
	enumField(m, "initially", &h.Initially, InitiallyHealthy, InitiallyUnhealthy)
	m.boolean("parallel", &h.Parallel)
	switch {
	case !typeKnown:
	case h.Type == CheckTCP:
		for _, key := range httpOnlyKeys {
			m.forbid(key, "applies to http checks only; set type: http, or remove it")
		}
		for _, key := range grpcOnlyKeys {
			m.forbid(key, "applies to grpc checks only; set type: grpc, or remove it")
		}
		for _, key := range probeKeys {
			m.forbid(key, "applies to http and grpc checks only; set type: http or grpc, or remove it")
		}
	case h.Type == CheckHTTP:
		for _, key := range grpcOnlyKeys {
			m.forbid(key, "applies to grpc checks only; set type: grpc, or remove it")
		}
		h.HTTP = p.httpCheck(m)
	case h.Type == CheckGRPC:
		for _, key := range httpOnlyKeys {
			m.forbid(key, "applies to http checks only; a grpc check asks the gRPC health service about service; remove it")
		}
		h.GRPC = p.grpcCheck(m)
	}
	return h
}

// grpcCheck reads the keys of a grpc health check.
func (p *parser) grpcCheck(m *mapping) *GRPCCheck {
	c := &GRPCCheck{}
	if m.str("service", &c.Service) && !validGRPCService(c.Service) {
		p.errorf(m.get("service"), m.at("service"), "%s is not a gRPC service name; give its full name, as in grpc.health.v1.Health or mypkg.MyService, or \"\" for the whole server", quote(c.Service))
	}
	c.Port, c.TLS, c.SNI = p.probeTarget(m)
	return c
}

// validGRPCService reports whether s is a fully qualified protobuf
// service name (dot-separated identifiers), or empty.
func validGRPCService(s string) bool {
	if s == "" {
		return true
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// probeTarget reads port, tls and sni, which http and grpc checks share.
func (p *parser) probeTarget(m *mapping) (port int, useTLS bool, sni string) {
	m.integer("port", &port, 1, maxPort)
	m.boolean("tls", &useTLS)
	if m.str("sni", &sni) {
		if msg := checkSNI(sni); msg != "" {
			p.errorf(m.get("sni"), m.at("sni"), "%s", msg)
		} else if !useTLS {
			p.errorf(m.keys["sni"], m.at("sni"), "sni is sent only over TLS; add tls: true, or remove sni")
		}
	}
	return port, useTLS, sni
}

// checkTiming reads interval and timeout. A check must end by the time
// the next one is due, so timeout may not exceed a repeating interval.
// (Equal is allowed: it is what the defaults give, and a check that times
// out then ends just as the next one starts.)
func (p *parser) checkTiming(m *mapping, h *HealthCheck) {
	okInterval := true
	if n := m.get("interval"); n != nil {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == tagStr && n.Value == once {
			h.Interval = 0
		} else {
			okInterval = m.duration("interval", &h.Interval, false)
		}
	}
	okTimeout := !m.has("timeout") || m.duration("timeout", &h.Timeout, true)
	if !okInterval || !okTimeout || h.Interval == 0 || h.Timeout <= h.Interval {
		return
	}
	if m.has("timeout") {
		p.errorf(m.get("timeout"), m.at("timeout"), "%s is longer than interval (%s%s); a check must end before the next one is due, so shorten timeout or lengthen interval",
			h.Timeout, h.Interval, defaultMark(m, "interval"))
		return
	}
	p.errorf(m.get("interval"), m.at("interval"), "%s is shorter than timeout (%s, the default); a check must end before the next one is due, so lengthen interval or set a shorter timeout",
		h.Interval, h.Timeout)
}

// defaultMark returns ", the default" when key is absent, for messages
// that quote a value the user did not write.
func defaultMark(m *mapping, key string) string {
	if m.has(key) {
		return ""
	}
	return ", the default"
}

// httpCheck reads the keys of an http health check.
func (p *parser) httpCheck(m *mapping) *HTTPCheck {
	c := &HTTPCheck{Method: DefaultCheckMethod, Path: DefaultCheckPath, Expect: lb.MustParseStatusSet(DefaultCheckExpect)}
	if m.str("method", &c.Method) {
		if msg := checkMethod(c.Method); msg != "" {
			p.errorf(m.get("method"), m.at("method"), "%s", msg)
		}
	}
	if m.str("path", &c.Path) && !validRequestPath(c.Path) {
		p.errorf(m.get("path"), m.at("path"), "%s is not a request path; it must start with \"/\" and hold no spaces or control characters", quote(c.Path))
	}
	p.hostHeader(m, "host", &c.Host)
	c.Headers = m.stringMap("headers", checkCheckHeader)
	if n := m.get("expect"); n != nil {
		p.expect(n, m.at("expect"), &c.Expect)
	}
	m.str("body_contains", &c.BodyContains)
	c.Port, c.TLS, c.SNI = p.probeTarget(m)
	return c
}

// checkMethod returns a problem with a request method, or "". Methods
// are case-sensitive, so "get" is almost certainly a typo for "GET".
func checkMethod(method string) string {
	if !httpsyntax.IsToken(method) {
		return fmt.Sprintf("%s is not a valid request method", quote(method))
	}
	if up := strings.ToUpper(method); up != method {
		return fmt.Sprintf("%s: methods are case-sensitive; did you mean %s?", quote(method), quote(up))
	}
	return ""
}

// validRequestPath reports whether s can be sent as an origin-form request
// target.
func validRequestPath(s string) bool {
	if !strings.HasPrefix(s, "/") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// checkCheckHeader checks a header of an http health check. Host has its
// own key, which a header would silently contradict.
func checkCheckHeader(name, value string) (badKey, badValue string) {
	if strings.EqualFold(name, "host") {
		return "set the Host header with the host key of health_check, not in headers", ""
	}
	return checkHeader(name, value)
}

// expect reads the expect key into the set pkg/lb checks responses
// against, parsed once, by lb.ParseStatusSet: codes, ranges and classes.
// A single code is often written unquoted, so integers are accepted too.
func (p *parser) expect(n *yaml.Node, path string, dst *lb.StatusSet) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagStr && n.ShortTag() != tagInt) {
		p.wrongType(n, path, `status codes, ranges and classes, such as "200-299,304" or "2xx"`)
		return
	}
	set, err := lb.ParseStatusSet(n.Value)
	if err != nil {
		// lb's error repeats the whole value, which the position shows.
		msg := strings.TrimPrefix(err.Error(), lb.ErrBadStatusSet.Error()+": "+strconv.Quote(n.Value)+": ")
		p.errorf(n, path, "%s; write codes, ranges and classes such as \"200-299,304\" or \"2xx\"", msg)
		return
	}
	*dst = set
}
