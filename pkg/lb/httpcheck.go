package lb

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-lb/weir/internal/httpsyntax"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// Defaults and bounds of HTTPCheck.
const (
	// DefaultCheckMaxBody bounds the response body an HTTPCheck reads
	// when MaxBody is zero. Health endpoints answer in bytes; a backend
	// streaming megabytes at its checker must not cost it memory or time.
	DefaultCheckMaxBody = 64 << 10

	// checkUserAgent identifies the checker in backend logs, so operators
	// can filter its requests out.
	checkUserAgent = "weir-health-check"
	// checkMaxHeaderBytes bounds the response headers as MaxBody bounds
	// the body.
	checkMaxHeaderBytes = 64 << 10
	// checkIdleTimeout closes kept-alive connections of backends no
	// longer checked (removed from the pool) instead of keeping them for
	// the life of the HTTPCheck.
	checkIdleTimeout = 90 * time.Second
	// checkReadChunk is the buffer the body is read through.
	checkReadChunk = 8 << 10
	// unixHostSuffix marks the URL host that stands for a Unix socket:
	// the hex-encoded path under the reserved .invalid domain (RFC 6761),
	// which no DNS name of a real backend can be. See HTTPCheck.targetFor.
	unixHostSuffix = ".unix.invalid"
)

// Errors reported by HTTPCheck. Check errors wrap them with the request,
// so test with errors.Is.
var (
	// ErrUnexpectedStatus: the response status is not in Expect.
	ErrUnexpectedStatus = errors.New("unexpected status")
	// ErrBodyMismatch: the response body lacks BodyContains.
	ErrBodyMismatch = errors.New("body does not contain")
)

// HTTPCheck considers a backend healthy when it answers an HTTP/1.1
// request with an expected status and, optionally, a body containing a
// given text.
//
// An HTTPCheck is safe for concurrent use. It builds its HTTP transport
// on the first Check from the fields then set, so the fields must not
// change afterwards, until Close. Do not copy an HTTPCheck after use.
type HTTPCheck struct {
	// Method is the request method; empty means GET.
	Method string
	// Path is the request target, query included; empty means "/".
	Path string
	// Host is the Host header. Empty means the address connected to
	// (host:port, Port applied), or "localhost" for a Unix backend. A
	// Host entry in Header is ignored: set this field.
	Host string
	// Header holds extra request headers. The checker sends
	// "User-Agent: weir-health-check" unless Header sets one.
	Header http.Header
	// Expect is the set of healthy statuses; the zero value means any
	// 2xx. Redirects are not followed: expect 3xx to accept them.
	Expect StatusSet
	// BodyContains, if not empty, must occur in the first MaxBody bytes
	// of the response body.
	BodyContains string
	// Port overrides the backend's port, for backends that serve health
	// on a separate port. Zero keeps the backend's; it is ignored for
	// Unix backends.
	Port int
	// TLS, when set, makes the check use HTTPS with this configuration,
	// certificate verification included unless it sets
	// InsecureSkipVerify. Nil means plain HTTP. HTTP/2 is never
	// negotiated: the check speaks HTTP/1.1.
	TLS *tls.Config
	// SNI is the TLS server name, chosen as for TCPCheck.SNI.
	SNI string
	// Reuse keeps connections alive between checks. By default each
	// check opens a fresh connection and sends "Connection: close", which
	// also proves the backend still accepts connections.
	Reuse bool
	// Timeout bounds the whole check, connect to body; zero means
	// DefaultCheckTimeout. The deadline of the context given to Check
	// applies too: whichever comes first ends the check.
	Timeout time.Duration
	// MaxBody bounds the bytes of body read, to match BodyContains and
	// to drain the connection for reuse; zero means DefaultCheckMaxBody.
	// A longer body is read up to the bound, then its connection closed.
	MaxBody int64

	// ProxyProtocol, when not 0, makes the check start each connection
	// with a PROXY protocol header of that version, saying the
	// connection is the balancer's own (v2 LOCAL, v1 UNKNOWN), for
	// backends that require one from the balancer, as its proxied
	// connections carry (HAProxy's check-send-proxy).
	ProxyProtocol proxyproto.Version

	// dial opens the connections; nil means dialProbe. Tests substitute
	// one to observe what the check reads.
	dial probeDialFunc

	mu     sync.Mutex
	client *http.Client // built by the first Check, dropped by Close
}

var _ HealthCheck = (*HTTPCheck)(nil)
var _ io.Closer = (*HTTPCheck)(nil)

// Validate reports a configuration that no backend could pass.
func (c *HTTPCheck) Validate() error {
	if err := validateProbe(c.Timeout, c.TLS, c.SNI); err != nil {
		return err
	}
	method := c.method()
	switch {
	case !httpsyntax.IsToken(method):
		return fmt.Errorf("%w: method %q is not an HTTP token", ErrBadHealthCheck, c.Method)
	case c.Path != "" && !strings.HasPrefix(c.Path, "/"):
		return fmt.Errorf("%w: path %q must start with /", ErrBadHealthCheck, c.Path)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("%w: port %d must be 1 to 65535 (0 keeps the backend's)", ErrBadHealthCheck, c.Port)
	case c.MaxBody < 0:
		return fmt.Errorf("%w: negative MaxBody %d", ErrBadHealthCheck, c.MaxBody)
	case c.BodyContains != "" && method == http.MethodHead:
		return fmt.Errorf("%w: BodyContains %q with HEAD, which has no body", ErrBadHealthCheck, c.BodyContains)
	case int64(len(c.BodyContains)) > c.maxBody():
		return fmt.Errorf("%w: BodyContains is %d bytes, longer than MaxBody %d", ErrBadHealthCheck, len(c.BodyContains), c.maxBody())
	}
	if _, err := url.ParseRequestURI(c.path()); err != nil {
		return fmt.Errorf("%w: path %q: %w", ErrBadHealthCheck, c.Path, err)
	}
	return nil
}

// Check sends the request to b and judges the response. The error says
// what was wrong, e.g. "GET http://127.0.0.1:8001/health: unexpected
// status 500, want 2xx".
func (c *HTTPCheck) Check(ctx context.Context, b *Backend) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if b == nil {
		return errNilBackend
	}
	target, err := c.targetFor(b)
	if err != nil {
		return err
	}
	ctx, cancel, budget := probeContext(ctx, c.Timeout)
	defer cancel()
	req, err := c.newRequest(ctx, target)
	if err != nil {
		return err
	}
	what := req.Method + " " + target.display
	resp, err := c.httpClient().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return probeError(what, budget, err)
	}
	defer resp.Body.Close()
	if !c.Expect.Contains(resp.StatusCode) {
		// Not reading the body closes the connection: a failing backend
		// is worth a fresh one, and its body could stall the verdict.
		return fmt.Errorf("%s: %w %d, want %s", what, ErrUnexpectedStatus, resp.StatusCode, c.Expect)
	}
	found, truncated, err := c.readBody(resp.Body)
	if err != nil {
		return probeError(what+": reading body", budget, err)
	}
	if c.BodyContains != "" && !found {
		if truncated {
			return fmt.Errorf("%s: %w %q in its first %d bytes", what, ErrBodyMismatch, c.BodyContains, c.maxBody())
		}
		return fmt.Errorf("%s: %w %q", what, ErrBodyMismatch, c.BodyContains)
	}
	return nil
}

// Close closes the idle kept-alive connections and drops the transport;
// a later Check builds a new one from the fields as they are then. It
// does not interrupt checks in progress, and always returns nil.
func (c *HTTPCheck) Close() error {
	c.mu.Lock()
	client := c.client
	c.client = nil
	c.mu.Unlock()
	if client != nil {
		client.CloseIdleConnections()
	}
	return nil
}

func (c *HTTPCheck) method() string {
	if c.Method == "" {
		return http.MethodGet
	}
	return c.Method
}

func (c *HTTPCheck) path() string {
	if c.Path == "" {
		return "/"
	}
	return c.Path
}

func (c *HTTPCheck) maxBody() int64 {
	if c.MaxBody == 0 {
		return DefaultCheckMaxBody
	}
	return c.MaxBody
}

// httpTarget is where one check sends its request.
type httpTarget struct {
	// url is what the transport is given. Its host must tell the dialer
	// where to connect: see httpTargetFor.
	url string
	// display is the URL as errors show it; for a Unix backend it uses
	// nginx's notation, http://unix:/path:/uri.
	display string
	// host is the Host header.
	host string
}

// targetFor returns the request target for b.
//
// The transport keys its pool of kept-alive connections on the URL host
// and hands that host to the dialer, so the host must identify the socket
// to dial, uniquely. For TCP it is the backend's address with Port
// applied; for a Unix backend it is the socket path, hex-encoded into a
// host name under unixHostSuffix, which unixPathFromHost decodes.
func (c *HTTPCheck) targetFor(b *Backend) (httpTarget, error) {
	scheme := "http"
	if c.TLS != nil {
		scheme = "https"
	}
	path := c.path()
	if b.Network() == "unix" {
		socket := b.DialAddr()
		host := hex.EncodeToString([]byte(socket)) + unixHostSuffix
		return httpTarget{
			url:     scheme + "://" + host + path,
			display: scheme + "://unix:" + socket + ":" + path,
			host:    cmp.Or(c.Host, "localhost"),
		}, nil
	}
	host, port := b.HostPort()
	if port == "" {
		return httpTarget{}, fmt.Errorf("%w: %q: no port", ErrBadAddress, b.Addr)
	}
	if c.Port != 0 {
		port = strconv.Itoa(c.Port)
	}
	authority := net.JoinHostPort(host, port)
	// url.URL escapes an IPv6 zone's "%" as URLs require.
	u := (&url.URL{Scheme: scheme, Host: authority}).String() + path
	return httpTarget{url: u, display: u, host: cmp.Or(c.Host, authority)}, nil
}

// unixPathFromHost decodes the socket path targetFor encoded in a URL
// host, reporting false for the host of a TCP backend.
func unixPathFromHost(host string) (string, bool) {
	encoded, ok := strings.CutSuffix(host, unixHostSuffix)
	if !ok {
		return "", false
	}
	path, err := hex.DecodeString(encoded)
	if err != nil {
		return "", false
	}
	return string(path), true
}

// newRequest builds the request of one check.
func (c *HTTPCheck) newRequest(ctx context.Context, target httpTarget) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, c.method(), target.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrBadHealthCheck, c.method(), target.display, err)
	}
	req.Host = target.host
	if c.Header != nil {
		req.Header = c.Header.Clone()
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", checkUserAgent)
	}
	req.Close = !c.Reuse
	return req, nil
}

// readBody reads the body up to the bound, looking for BodyContains. It
// reports whether the text was found and whether the body went on past
// the bound; such a body is left unread, so its connection is closed
// rather than reused.
func (c *HTTPCheck) readBody(body io.Reader) (found, truncated bool, err error) {
	limit := c.maxBody()
	m := newBodyMatcher(c.BodyContains)
	n, err := io.CopyBuffer(m, io.LimitReader(body, limit), make([]byte, checkReadChunk))
	if err != nil {
		return false, false, err
	}
	if n == limit {
		// Only a Read that returns io.EOF lets the transport reuse the
		// connection, and tells a body of exactly limit bytes from a
		// longer one.
		var probe [1]byte
		k, probeErr := body.Read(probe[:])
		truncated = k > 0 || probeErr != io.EOF
	}
	return m.found, truncated, nil
}

// httpClient returns the client of this check, building it on first use.
func (c *HTTPCheck) httpClient() *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = c.newClient()
	}
	return c.client
}

// newClient builds the client from the current fields: a transport that
// dials TCP or Unix backends per targetFor, never uses a proxy from the
// environment, speaks HTTP/1.1 only, and keeps connections alive only
// with Reuse.
func (c *HTTPCheck) newClient() *http.Client {
	var tlsConfig *tls.Config
	if c.TLS != nil {
		tlsConfig = c.TLS.Clone()
		// The transport cannot speak h2 on a connection it did not
		// handshake itself, so never let the server pick it.
		tlsConfig.NextProtos = []string{"http/1.1"}
	}
	dial := c.dial
	if dial == nil {
		dial = dialProbe
	}
	dial = announcing(dial, c.ProxyProtocol)
	timeout := probeTimeout(c.Timeout)
	sni := c.SNI
	open := func(ctx context.Context, addr string, cfg *tls.Config) (net.Conn, error) {
		// The transport detaches dials from the request's context, so
		// that a late connection can serve a later request. Bound them
		// by the timeout, or a dial to a silent host would outlive the
		// check by minutes.
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return httpProbeTarget(addr, cfg, sni).open(ctx, dial, timeout)
	}
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return open(ctx, addr, nil)
		},
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return open(ctx, addr, tlsConfig)
		},
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableKeepAlives:      !c.Reuse,
		DisableCompression:     true,
		IdleConnTimeout:        checkIdleTimeout,
		MaxResponseHeaderBytes: checkMaxHeaderBytes,
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// httpProbeTarget maps the address the transport dials, the URL's
// host:port, back to the backend's socket.
func httpProbeTarget(addr string, cfg *tls.Config, sni string) probeTarget {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if path, ok := unixPathFromHost(host); ok {
		return probeTarget{
			network: "unix", address: path, name: unixPrefix + path,
			tls: cfg, serverName: probeServerName(sni, cfg, ""),
		}
	}
	return probeTarget{
		network: "tcp", address: addr, name: addr,
		tls: cfg, serverName: probeServerName(sni, cfg, host),
	}
}

// bodyMatcher is an io.Writer that looks for needle in what is written to
// it, including occurrences split across writes, keeping only the last
// len(needle)-1 bytes between writes.
type bodyMatcher struct {
	needle []byte
	found  bool
	// carry holds the tail of the previous writes; joined is scratch
	// space for carry plus the head of the next write.
	carry, joined []byte
}

func newBodyMatcher(needle string) *bodyMatcher {
	keep := max(len(needle)-1, 0)
	return &bodyMatcher{
		needle: []byte(needle),
		carry:  make([]byte, 0, keep),
		joined: make([]byte, 0, 2*keep),
	}
}

// Write never fails, so that the body is drained whether or not it
// matches.
func (m *bodyMatcher) Write(p []byte) (int, error) {
	if m.found || len(m.needle) == 0 {
		return len(p), nil
	}
	keep := len(m.needle) - 1
	m.joined = append(append(m.joined[:0], m.carry...), p[:min(len(p), keep)]...)
	if bytes.Contains(m.joined, m.needle) || bytes.Contains(p, m.needle) {
		m.found = true
		return len(p), nil
	}
	tail := p
	if len(p) < keep {
		tail = m.joined
	}
	m.carry = append(m.carry[:0], tail[max(len(tail)-keep, 0):]...)
	return len(p), nil
}

// StatusSet is a set of HTTP status codes, 100 to 599. The zero value
// means any 2xx, the usual meaning of a healthy answer.
//
// It is written as a comma-separated list of codes ("204"), ranges
// ("300-399") and classes ("2xx"): see ParseStatusSet. It implements
// encoding.TextMarshaler and TextUnmarshaler, so configuration files can
// hold it as a string.
type StatusSet struct {
	// bits has bit i set for status minStatusCode+i: a fixed-size value
	// that is compared, copied and tested without allocating.
	bits [statusWords]uint64
}

const (
	minStatusCode = 100
	maxStatusCode = 599
	statusWords   = (maxStatusCode - minStatusCode + 64) / 64
)

// ErrBadStatusSet is returned, wrapped with the offending text, when a
// status set does not parse.
var ErrBadStatusSet = errors.New("bad status set")

// ParseStatusSet parses a comma-separated list of status codes ("200"),
// inclusive ranges ("300-399") and classes ("2xx"), e.g.
// "200,204,300-399". Spaces around items are ignored. Every code must be
// 100 to 599; the empty string is an error, not the default.
func ParseStatusSet(s string) (StatusSet, error) {
	var set StatusSet
	if strings.TrimSpace(s) == "" {
		return set, fmt.Errorf("%w: empty", ErrBadStatusSet)
	}
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, err := parseStatusItem(strings.TrimSpace(item))
		if err != nil {
			return StatusSet{}, fmt.Errorf("%w: %q: %w", ErrBadStatusSet, s, err)
		}
		for code := lo; code <= hi; code++ {
			set.add(code)
		}
	}
	return set, nil
}

// MustParseStatusSet is ParseStatusSet for sets known to be valid, as in
// literals. It panics on a bad set.
func MustParseStatusSet(s string) StatusSet {
	set, err := ParseStatusSet(s)
	if err != nil {
		panic(err)
	}
	return set
}

// parseStatusItem parses one item of a status list into an inclusive
// range.
func parseStatusItem(item string) (lo, hi int, err error) {
	if item == "" {
		return 0, 0, errors.New("empty item")
	}
	if class, ok := strings.CutSuffix(strings.ToLower(item), "xx"); ok {
		if len(class) != 1 || class[0] < '1' || class[0] > '5' {
			return 0, 0, fmt.Errorf("%q is not a status class 1xx to 5xx", item)
		}
		lo = int(class[0]-'0') * 100
		return lo, lo + 99, nil
	}
	loText, hiText, isRange := strings.Cut(item, "-")
	if lo, err = parseStatusCode(strings.TrimSpace(loText)); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parseStatusCode(strings.TrimSpace(hiText)); err != nil {
		return 0, 0, err
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("range %q is reversed", item)
	}
	return lo, hi, nil
}

// parseStatusCode parses a status code of three digits, 100 to 599.
func parseStatusCode(s string) (int, error) {
	if len(s) != 3 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a status code: want three digits", s)
	}
	code, _ := strconv.Atoi(s)
	if code < minStatusCode || code > maxStatusCode {
		return 0, fmt.Errorf("status %d is outside %d-%d", code, minStatusCode, maxStatusCode)
	}
	return code, nil
}

func (s *StatusSet) add(code int) {
	i := code - minStatusCode
	s.bits[i/64] |= 1 << (i % 64)
}

func (s StatusSet) has(code int) bool {
	i := code - minStatusCode
	return s.bits[i/64]&(1<<(i%64)) != 0
}

// Contains reports whether code is in the set; for the zero value,
// whether it is 2xx.
func (s StatusSet) Contains(code int) bool {
	if s == (StatusSet{}) {
		return code >= 200 && code <= 299
	}
	return code >= minStatusCode && code <= maxStatusCode && s.has(code)
}

// String returns the set in ParseStatusSet's syntax, canonical: ascending,
// whole classes as "2xx", runs as ranges. The zero value is "2xx".
func (s StatusSet) String() string {
	if s == (StatusSet{}) {
		return "2xx"
	}
	var parts []string
	for code := minStatusCode; code <= maxStatusCode; {
		switch {
		case s.isWholeClass(code):
			parts = append(parts, strconv.Itoa(code/100)+"xx")
			code += 100
		case s.has(code):
			end := s.runEnd(code)
			if end == code {
				parts = append(parts, strconv.Itoa(code))
			} else {
				parts = append(parts, strconv.Itoa(code)+"-"+strconv.Itoa(end))
			}
			code = end + 1
		default:
			code++
		}
	}
	return strings.Join(parts, ",")
}

// isWholeClass reports whether code starts a class (x00) that is all in
// the set.
func (s StatusSet) isWholeClass(code int) bool {
	if code%100 != 0 {
		return false
	}
	for c := code; c < code+100; c++ {
		if !s.has(c) {
			return false
		}
	}
	return true
}

// runEnd returns the last code of the run of codes in the set starting
// at code, stopping before a whole class so that String writes it as one.
func (s StatusSet) runEnd(code int) int {
	end := code
	for end < maxStatusCode && s.has(end+1) && !s.isWholeClass(end+1) {
		end++
	}
	return end
}

// MarshalText returns String's form.
func (s StatusSet) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// UnmarshalText parses text as ParseStatusSet does.
func (s *StatusSet) UnmarshalText(text []byte) error {
	set, err := ParseStatusSet(string(text))
	if err != nil {
		return err
	}
	*s = set
	return nil
}
