package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/limit"
	"gopkg.in/yaml.v3"
)

// Limits are what an http_proxy or respond service allows each client
// (key limits). Zero fields set no limit.
type Limits struct {
	// Pos is where the limits mapping starts.
	Pos Position
	// MaxRequestBody bounds a request body in bytes (key
	// max_request_body, a size; http_proxy services); over it the client
	// gets 413. A route's own max_request_body overrides it
	// (route.Route.MaxRequestBody).
	MaxRequestBody int64
	// MaxHeaderBytes and MaxHeaders bound a request head: its bytes and
	// its number of fields (keys max_header_bytes, a size from 1 KiB to
	// 1 MiB, and max_headers, 1 to 10000; defaults 32 KiB and 100). Over
	// them the client gets 431.
	MaxHeaderBytes int
	MaxHeaders     int
	// Rate is each client's request rate (key rate: requests, per,
	// burst); nil: none. Over it the client gets 429 with Retry-After.
	Rate *limit.Rate
	// ClientKey groups client addresses into one client for Rate and
	// MaxClientConnections (key client_key: ipv4_prefix, ipv6_prefix;
	// defaults 32 and 128, each address its own client).
	ClientKey limit.Key
	// MaxClientConnections bounds each client's open connections (key
	// max_client_connections); over it a new connection is closed at once.
	MaxClientConnections int
	// MaxClients bounds the clients the rate limiter tracks at once, and
	// so its memory, about 100 bytes a client (key max_clients; 0:
	// limit.DefaultMaxClients).
	MaxClients int
}

// limitsKeys are the keys of a limits mapping.
var limitsKeys = []string{
	"max_request_body", "max_header_bytes", "max_headers", "rate", "client_key", "max_client_connections", "max_clients",
}

// The bounds of the head limits. Above 1 MiB the HTTP/1.1 reader has no
// buffer for a head; below 1 KiB hardly a browser's request fits.
const (
	MinHeaderBytes = 1 << 10
	MaxHeaderBytes = 1 << 20
	MaxHeaderCount = 10000
)

// limits reads a service's limits mapping; nil when absent.
func (p *parser) limits(m *mapping, kind Kind) *Limits {
	n := m.get("limits")
	if n == nil {
		return nil
	}
	lm := p.mapping(n, m.at("limits"), limitsKeys)
	if lm == nil {
		return nil
	}
	l := &Limits{
		Pos:            p.pos(lm.node),
		MaxHeaderBytes: h1.DefaultMaxHeaderBytes,
		MaxHeaders:     h1.DefaultMaxHeaders,
		ClientKey:      limit.Key{IPv4Prefix: 32, IPv6Prefix: 128},
	}
	if kind == KindRespond && lm.has("max_request_body") {
		lm.forbid("max_request_body", "a respond service reads no request body (it answers, and closes a connection whose body is over 256KiB); remove max_request_body")
	} else {
		lm.size("max_request_body", &l.MaxRequestBody, 1, math.MaxInt64)
	}
	var headerBytes int64
	if lm.size("max_header_bytes", &headerBytes, MinHeaderBytes, MaxHeaderBytes) {
		l.MaxHeaderBytes = int(headerBytes)
	}
	lm.integer("max_headers", &l.MaxHeaders, 1, MaxHeaderCount)
	if rn := lm.get("rate"); rn != nil {
		l.Rate = p.rate(rn, lm.at("rate"))
	}
	if kn := lm.get("client_key"); kn != nil {
		l.ClientKey = p.clientKey(kn, lm.at("client_key"))
	}
	lm.integer("max_client_connections", &l.MaxClientConnections, 1, 1<<30)
	if l.Rate != nil {
		l.MaxClients = limit.DefaultMaxClients
	}
	lm.integer("max_clients", &l.MaxClients, 1, 100_000_000)
	if lm.has("max_clients") && !lm.has("rate") {
		lm.forbid("max_clients", "max_clients bounds the memory of the rate limit, and no rate is set; set rate, or remove max_clients")
	}
	if lm.has("client_key") && !lm.has("rate") && !lm.has("max_client_connections") {
		lm.forbid("client_key", "client_key says which addresses count as one client for rate and max_client_connections, and neither is set; set one, or remove client_key")
	}
	return l
}

// rateKeys are the keys of a rate mapping.
var rateKeys = []string{"requests", "per", "burst"}

// rate reads a rate mapping: requests per a duration, with a burst
// (default: requests).
func (p *parser) rate(n *yaml.Node, path string) *limit.Rate {
	m := p.mapping(n, path, rateKeys)
	if m == nil {
		return nil
	}
	requests, per := 0, time.Second
	if !m.has("requests") {
		m.missing("requests", "say how many requests a client may send per period, such as \"requests: 100\"")
	}
	okRequests := m.integer("requests", &requests, 1, math.MaxInt32)
	okPer := !m.has("per") || m.duration("per", &per, true)
	burst := requests
	m.integer("burst", &burst, 1, math.MaxInt32)
	if !okRequests || !okPer {
		return nil
	}
	r := limit.Rate{PerSecond: float64(requests) / per.Seconds(), Burst: burst}
	if err := r.Validate(); err != nil {
		// requests ≥ 1 and per > 0 leave one failure: a burst whose
		// refill time is longer than the limiter counts (some 73 years).
		p.errorf(n, path, "a burst of %d at %d requests per %v takes longer to refill than weir can count; lower burst, or raise requests or shorten per", burst, requests, per)
		return nil
	}
	return &r
}

// clientKeyKeys are the keys of a client_key mapping.
var clientKeyKeys = []string{"ipv4_prefix", "ipv6_prefix"}

// clientKey reads a client_key mapping: the prefix lengths grouping
// addresses into clients.
func (p *parser) clientKey(n *yaml.Node, path string) limit.Key {
	k := limit.Key{IPv4Prefix: 32, IPv6Prefix: 128}
	m := p.mapping(n, path, clientKeyKeys)
	if m == nil {
		return k
	}
	m.integer("ipv4_prefix", &k.IPv4Prefix, 1, 32)
	m.integer("ipv6_prefix", &k.IPv6Prefix, 1, 128)
	return k
}

// sizeWant describes the accepted size forms in error messages.
const sizeWant = `a size such as "64KiB", "10MiB" or "1GiB", or a number of bytes`

// sizeUnits are the units a size may end with, largest first so that
// "KiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1},
}

// size reads a byte size into dst, which must be within [lo, hi]: a
// whole number of bytes, or a string of digits and a binary unit (B,
// KiB, MiB, GiB).
func (m *mapping) size(key string, dst *int64, lo, hi int64) bool {
	n := m.get(key)
	if n == nil {
		return false
	}
	v, ok := m.p.size(n, m.at(key))
	if !ok {
		return false
	}
	if v < lo || v > hi {
		m.p.errorf(n, m.at(key), "must be %s, got %s", sizeRange(lo, hi), formatSize(v))
		return false
	}
	*dst = v
	return true
}

// size parses a size scalar.
func (p *parser) size(n *yaml.Node, path string) (int64, bool) {
	if n.Kind != yaml.ScalarNode {
		p.wrongType(n, path, sizeWant)
		return 0, false
	}
	switch n.ShortTag() {
	case tagInt:
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			p.errorf(n, path, "%s bytes is out of range", clip(n.Value))
			return 0, false
		}
		return v, true
	case tagStr:
		s := strings.TrimSpace(n.Value)
		for _, u := range sizeUnits {
			digits, ok := strings.CutSuffix(s, u.suffix)
			if !ok {
				continue
			}
			v, err := strconv.ParseInt(strings.TrimSpace(digits), 10, 64)
			if err != nil || v < 0 {
				break
			}
			if v > math.MaxInt64/u.mult {
				p.errorf(n, path, "%s is out of range", clip(n.Value))
				return 0, false
			}
			return v * u.mult, true
		}
		p.errorf(n, path, "want %s, got %s%s", sizeWant, describe(n), sizeHint(s))
		return 0, false
	}
	p.wrongType(n, path, sizeWant)
	return 0, false
}

// sizeHint suggests the binary unit for a decimal or one-letter one
// ("10MB", "10m"): weir's sizes are binary, and guessing would be wrong
// for someone.
func sizeHint(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return ""
	}
	switch strings.ToUpper(strings.TrimSpace(s[i:])) {
	case "K", "KB":
		return fmt.Sprintf(" (did you mean %s?)", quote(s[:i]+"KiB"))
	case "M", "MB":
		return fmt.Sprintf(" (did you mean %s?)", quote(s[:i]+"MiB"))
	case "G", "GB":
		return fmt.Sprintf(" (did you mean %s?)", quote(s[:i]+"GiB"))
	}
	return ""
}

// formatSize writes a size in the largest unit that holds it exactly.
func formatSize(v int64) string {
	for _, u := range sizeUnits {
		if v != 0 && v%u.mult == 0 {
			return fmt.Sprintf("%d%s", v/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", v)
}

// sizeRange words an inclusive size range for error messages.
func sizeRange(lo, hi int64) string {
	if hi == math.MaxInt64 {
		return "at least " + formatSize(lo)
	}
	return formatSize(lo) + " to " + formatSize(hi)
}
