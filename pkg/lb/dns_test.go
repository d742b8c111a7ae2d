package lb

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/weir-lb/weir/internal/dnstest"
)

// testDNSTimeout bounds every Discover against the test server. Answers on
// loopback take microseconds; the bound only matters when the server is
// told to stay silent.
const testDNSTimeout = 2 * time.Second

// dnsTestWait bounds how long a test waits for anything before failing.
const dnsTestWait = 10 * time.Second

// dnsKey identifies an RRset of the test zone.
type dnsKey struct {
	name  string // lower-case, fully qualified
	qtype uint16
}

// testDNSServer is an authoritative DNS server on 127.0.0.1 whose zone,
// failures and silence the test controls while it runs.
type testDNSServer struct {
	addr string

	mu      sync.Mutex
	zone    map[dnsKey][]dns.RR
	names   map[string]bool // names with any record: others get NXDOMAIN
	rcodes  map[string]int  // forced response codes, by name
	silent  bool            // read queries, answer none
	queries map[uint16]int  // queries received, by type
	served  int             // answers sent, to rotate record order
}

// startTestDNS starts a server with the given zone (see setZone) and stops
// it when the test ends.
func startTestDNS(t *testing.T, records ...string) *testDNSServer {
	t.Helper()
	s := &testDNSServer{rcodes: make(map[string]int), queries: make(map[uint16]int)}
	s.setZone(t, records...)
	s.addr = dnstest.Serve(t, s)
	return s
}

// setZone replaces every record with records, in zone-file syntax
// ("app.test. 0 IN A 192.0.2.1"), kept in the order given.
func (s *testDNSServer) setZone(t *testing.T, records ...string) {
	t.Helper()
	zone := make(map[dnsKey][]dns.RR)
	names := make(map[string]bool)
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("record %q: %v", text, err)
		}
		h := rr.Header()
		key := dnsKey{strings.ToLower(h.Name), h.Rrtype}
		zone[key] = append(zone[key], rr)
		names[key.name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone, s.names = zone, names
}

// setRcode makes the server answer every query for name with rcode;
// dns.RcodeSuccess restores normal answers.
func (s *testDNSServer) setRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, name)
		return
	}
	s.rcodes[name] = rcode
}

// setSilent makes the server stop (or resume) answering.
func (s *testDNSServer) setSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// queryCount returns how many queries of qtype the server received.
func (s *testDNSServer) queryCount(qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[qtype]
}

// ServeDNS answers from the zone, rotating the records of an RRset on each
// answer so that clients cannot rely on their order.
func (s *testDNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(req.Question) != 1 {
		return
	}
	q := req.Question[0]
	s.queries[q.Qtype]++
	if s.silent {
		return
	}
	name := strings.ToLower(q.Name)
	resp := new(dns.Msg)
	if rcode, ok := s.rcodes[name]; ok {
		resp.SetRcode(req, rcode)
		_ = w.WriteMsg(resp)
		return
	}
	resp.SetReply(req)
	resp.Authoritative = true
	if !s.names[name] {
		resp.Rcode = dns.RcodeNameError
	}
	rrs := s.zone[dnsKey{name, q.Qtype}]
	if n := len(rrs); n > 0 {
		k := s.served % n
		resp.Answer = append(append([]dns.RR{}, rrs[k:]...), rrs[:k]...)
	}
	s.served++
	_ = w.WriteMsg(resp)
}

// newTestDNS returns a DNS discovery that queries s.
func newTestDNS(t *testing.T, s *testDNSServer, network string, names ...DNSName) *DNS {
	t.Helper()
	d, err := NewDNS(DNSConfig{Names: names, Network: network, Server: s.addr, Timeout: testDNSTimeout})
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	return d
}

// discoverBounded runs Discover and fails the test if it does not return
// within dnsTestWait, so that a hung resolver cannot hang the suite.
func discoverBounded(t *testing.T, d Discovery) (Set, error) {
	t.Helper()
	type result struct {
		set Set
		err error
	}
	ch := make(chan result, 1)
	go func() {
		set, err := d.Discover(context.Background())
		ch <- result{set, err}
	}()
	select {
	case r := <-ch:
		return r.set, r.err
	case <-time.After(dnsTestWait):
		t.Fatalf("Discover did not return within %v", dnsTestWait)
		return Set{}, nil
	}
}

// dnsName is a shorthand for a DNSName of weight 0 (1 for host:port names).
func dnsName(n string) DNSName { return DNSName{Name: n} }

func TestDNSDiscover(t *testing.T) {
	tests := []struct {
		name      string
		zone      []string
		network   string
		names     []DNSName
		want      []Backend
		forbidden uint16 // a query type the resolver must not send
	}{
		{
			name:      "A records, numerically ordered",
			zone:      []string{"app.test. 0 IN A 192.0.2.10", "app.test. 0 IN A 192.0.2.9", "app.test. 0 IN AAAA 2001:db8::10"},
			network:   "ip4",
			names:     []DNSName{{Name: "app.test.:8080", Weight: 3}},
			want:      []Backend{MustBackend("192.0.2.9:8080", 3), MustBackend("192.0.2.10:8080", 3)},
			forbidden: dns.TypeAAAA,
		},
		{
			name:      "AAAA records",
			zone:      []string{"app.test. 0 IN AAAA 2001:db8::10", "app.test. 0 IN AAAA 2001:db8::9", "app.test. 0 IN A 192.0.2.10"},
			network:   "ip6",
			names:     []DNSName{dnsName("app.test.:443")},
			want:      []Backend{MustBackend("[2001:db8::9]:443", 1), MustBackend("[2001:db8::10]:443", 1)},
			forbidden: dns.TypeA,
		},
		{
			name:  "both families by default, IPv4 first",
			zone:  []string{"app.test. 0 IN AAAA 2001:db8::1", "app.test. 0 IN A 198.51.100.7"},
			names: []DNSName{{Name: "app.test.:80", Weight: 2}},
			want:  []Backend{MustBackend("198.51.100.7:80", 2), MustBackend("[2001:db8::1]:80", 2)},
		},
		{
			name:    "both families when only A exists",
			zone:    []string{"app.test. 0 IN A 198.51.100.7"},
			network: "ip",
			names:   []DNSName{dnsName("app.test.:80")},
			want:    []Backend{MustBackend("198.51.100.7:80", 1)},
		},
		{
			name:  "IPv4-mapped AAAA is the IPv4 server",
			zone:  []string{"app.test. 0 IN A 192.0.2.1", "app.test. 0 IN AAAA ::ffff:192.0.2.1"},
			names: []DNSName{dnsName("app.test.:80")},
			want:  []Backend{MustBackend("192.0.2.1:80", 1)},
		},
		{
			name:  "names in order, then addresses",
			zone:  []string{"b.test. 0 IN A 192.0.2.2", "b.test. 0 IN A 192.0.2.1", "a.test. 0 IN A 203.0.113.9", "a.test. 0 IN A 203.0.113.8"},
			names: []DNSName{dnsName("b.test.:80"), dnsName("a.test.:80")},
			want: []Backend{
				MustBackend("192.0.2.1:80", 1), MustBackend("192.0.2.2:80", 1),
				MustBackend("203.0.113.8:80", 1), MustBackend("203.0.113.9:80", 1),
			},
		},
		{
			name:  "same address from two names sums weights at its first place",
			zone:  []string{"a.test. 0 IN A 192.0.2.5", "b.test. 0 IN A 192.0.2.1", "b.test. 0 IN A 192.0.2.5"},
			names: []DNSName{{Name: "a.test.:80", Weight: 2}, {Name: "b.test.:80", Weight: 3}},
			want:  []Backend{MustBackend("192.0.2.5:80", 5), MustBackend("192.0.2.1:80", 3)},
		},
		{
			name:  "summed weights are capped",
			zone:  []string{"a.test. 0 IN A 192.0.2.5", "b.test. 0 IN A 192.0.2.5"},
			names: []DNSName{{Name: "a.test.:80", Weight: 6000}, {Name: "b.test.:80", Weight: 6000}},
			want:  []Backend{MustBackend("192.0.2.5:80", MaxWeight)},
		},
		{
			name:  "same address on another port is another backend",
			zone:  []string{"a.test. 0 IN A 192.0.2.5"},
			names: []DNSName{dnsName("a.test.:80"), dnsName("a.test.:81")},
			want:  []Backend{MustBackend("192.0.2.5:80", 1), MustBackend("192.0.2.5:81", 1)},
		},
		{
			name: "SRV uses the lowest priority with mapped weights",
			zone: []string{
				"_http._tcp.svc.test. 0 IN SRV 10 0 8080 Node-B.test.",
				"_http._tcp.svc.test. 0 IN SRV 10 60000 8080 node-a.test.",
				"_http._tcp.svc.test. 0 IN SRV 10 5 9090 node-a.test.",
				"_http._tcp.svc.test. 0 IN SRV 20 100 8080 standby.test.",
			},
			names: []DNSName{dnsName("_http._tcp.svc.test.")},
			want: []Backend{
				MustBackend("node-a.test:8080", MaxWeight),
				MustBackend("node-a.test:9090", 5),
				MustBackend("node-b.test:8080", 1),
			},
		},
		{
			name: "SRV skips the root target",
			zone: []string{
				"_http._tcp.svc.test. 0 IN SRV 1 10 80 .",
				"_http._tcp.svc.test. 0 IN SRV 5 10 80 node.test.",
			},
			names: []DNSName{dnsName("_http._tcp.svc.test.")},
			want:  []Backend{MustBackend("node.test:80", 10)},
		},
		{
			name:  "SRV with only the root target is an empty service",
			zone:  []string{"_http._tcp.svc.test. 0 IN SRV 0 0 0 ."},
			names: []DNSName{dnsName("_http._tcp.svc.test.")},
		},
		{
			name: "SRV duplicates sum",
			zone: []string{
				"_http._tcp.svc.test. 0 IN SRV 1 10 80 node.test.",
				"_http._tcp.svc.test. 0 IN SRV 1 20 80 node.test.",
			},
			names: []DNSName{dnsName("_http._tcp.svc.test.")},
			want:  []Backend{MustBackend("node.test:80", 30)},
		},
		{
			name: "SRV and host names together",
			zone: []string{
				"_http._tcp.svc.test. 0 IN SRV 1 4 80 node.test.",
				"app.test. 0 IN A 192.0.2.1",
			},
			names: []DNSName{dnsName("app.test.:80"), dnsName("_http._tcp.svc.test.")},
			want:  []Backend{MustBackend("192.0.2.1:80", 1), MustBackend("node.test:80", 4)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startTestDNS(t, tt.zone...)
			d := newTestDNS(t, s, tt.network, tt.names...)
			set, err := discoverBounded(t, d)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			checkDiscovered(t, set.Backends, tt.want)
			if err := validateSet(set.Backends); err != nil {
				t.Errorf("Discover returned an invalid set: %v", err)
			}
			if len(set.Disabled) != 0 {
				t.Errorf("Disabled = %v, want none", set.Disabled)
			}
			if tt.forbidden != 0 {
				if n := s.queryCount(tt.forbidden); n != 0 {
					t.Errorf("resolver sent %d %s queries", n, dns.TypeToString[tt.forbidden])
				}
			}
		})
	}
}

func TestDNSDiscoverErrors(t *testing.T) {
	tests := []struct {
		name         string
		zone         []string
		network      string
		rcodes       map[string]int
		names        []DNSName
		wantNamed    []string // names the error must mention
		wantNotNamed []string // names that resolved and must not be blamed
		wantNotFound bool
	}{
		{
			name:         "NXDOMAIN",
			names:        []DNSName{dnsName("missing.test.:80")},
			wantNamed:    []string{"missing.test.:80"},
			wantNotFound: true,
		},
		{
			name:         "no record of the family asked for",
			zone:         []string{"app.test. 0 IN AAAA 2001:db8::1"},
			network:      "ip4",
			names:        []DNSName{dnsName("app.test.:80")},
			wantNamed:    []string{"app.test.:80"},
			wantNotFound: true,
		},
		{
			name:      "SERVFAIL",
			zone:      []string{"app.test. 0 IN A 192.0.2.1"},
			rcodes:    map[string]int{"app.test.": dns.RcodeServerFailure},
			names:     []DNSName{dnsName("app.test.:80")},
			wantNamed: []string{"app.test.:80"},
		},
		{
			name:         "one of several names fails the whole discovery",
			zone:         []string{"good.test. 0 IN A 192.0.2.1"},
			names:        []DNSName{dnsName("good.test.:80"), dnsName("gone.test.:80")},
			wantNamed:    []string{"gone.test.:80"},
			wantNotNamed: []string{"good.test.:80"},
			wantNotFound: true,
		},
		{
			name:         "every failing name is named",
			zone:         []string{"good.test. 0 IN A 192.0.2.1"},
			rcodes:       map[string]int{"broken.test.": dns.RcodeServerFailure},
			names:        []DNSName{dnsName("broken.test.:80"), dnsName("good.test.:80"), dnsName("_http._tcp.gone.test.")},
			wantNamed:    []string{"broken.test.:80", "_http._tcp.gone.test."},
			wantNotNamed: []string{"good.test.:80"},
		},
		{
			name:         "SRV NXDOMAIN",
			names:        []DNSName{dnsName("_http._tcp.missing.test.")},
			wantNamed:    []string{"_http._tcp.missing.test."},
			wantNotFound: true,
		},
		{
			name:      "SRV record with port 0",
			zone:      []string{"_http._tcp.svc.test. 0 IN SRV 1 1 0 node.test."},
			names:     []DNSName{dnsName("_http._tcp.svc.test.")},
			wantNamed: []string{"_http._tcp.svc.test.", "node.test:0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startTestDNS(t, tt.zone...)
			for n, rcode := range tt.rcodes {
				s.setRcode(n, rcode)
			}
			d := newTestDNS(t, s, tt.network, tt.names...)
			set, err := discoverBounded(t, d)
			if err == nil {
				t.Fatalf("Discover succeeded with %v", set.Backends)
			}
			if !errors.Is(err, ErrResolve) {
				t.Errorf("error %v does not wrap ErrResolve", err)
			}
			if set.Backends != nil || set.Disabled != nil {
				t.Errorf("Discover returned %v with its error", set)
			}
			for _, n := range tt.wantNamed {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
			for _, n := range tt.wantNotNamed {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q blames %s, which resolved", err, n)
				}
			}
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound != tt.wantNotFound {
				t.Errorf("IsNotFound = %v, want %v in %v", dnsErr.IsNotFound, tt.wantNotFound, err)
			}
		})
	}
}

// TestDNSErrorNamesQueriedServer checks that a failure names the server
// actually queried, not the one in /etc/resolv.conf.
func TestDNSErrorNamesQueriedServer(t *testing.T) {
	s := startTestDNS(t)
	s.setRcode("app.test.", dns.RcodeServerFailure)
	_, err := discoverBounded(t, newTestDNS(t, s, "", dnsName("app.test.:80")))
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("error %v does not wrap a *net.DNSError", err)
	}
	if dnsErr.Server != s.addr || !strings.Contains(err.Error(), s.addr) {
		t.Fatalf("error %q (server %q) does not name the queried server %s", err, dnsErr.Server, s.addr)
	}
}

// TestDNSFollowsChanges re-resolves while the server's records change and
// fail, as the LoadBalancer's update loop does.
func TestDNSFollowsChanges(t *testing.T) {
	s := startTestDNS(t, "app.test. 0 IN A 192.0.2.1", "app.test. 0 IN A 192.0.2.2")
	// A short timeout keeps the silent step quick; loopback answers
	// take microseconds.
	d, err := NewDNS(DNSConfig{Names: []DNSName{dnsName("app.test.:80")}, Network: "ip4", Server: s.addr, Timeout: 750 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	steps := []struct {
		name    string
		prepare func()
		want    []Backend // nil: Discover must fail
	}{
		{
			name:    "initial records",
			prepare: func() {},
			want:    []Backend{MustBackend("192.0.2.1:80", 1), MustBackend("192.0.2.2:80", 1)},
		},
		{
			name:    "a server is replaced",
			prepare: func() { s.setZone(t, "app.test. 0 IN A 192.0.2.2", "app.test. 0 IN A 198.51.100.3") },
			want:    []Backend{MustBackend("192.0.2.2:80", 1), MustBackend("198.51.100.3:80", 1)},
		},
		{
			name:    "SERVFAIL",
			prepare: func() { s.setRcode("app.test.", dns.RcodeServerFailure) },
		},
		{
			name:    "recovered",
			prepare: func() { s.setRcode("app.test.", dns.RcodeSuccess) },
			want:    []Backend{MustBackend("192.0.2.2:80", 1), MustBackend("198.51.100.3:80", 1)},
		},
		{
			name:    "server silent",
			prepare: func() { s.setSilent(true) },
		},
		{
			name:    "server back with a shrunk set",
			prepare: func() { s.setSilent(false); s.setZone(t, "app.test. 0 IN A 198.51.100.3") },
			want:    []Backend{MustBackend("198.51.100.3:80", 1)},
		},
	}
	var results [][]Backend // every good result, to check none changes later
	var wants [][]Backend
	for _, step := range steps {
		step.prepare()
		set, err := discoverBounded(t, d)
		if step.want == nil {
			if err == nil || set.Backends != nil {
				t.Fatalf("%s: Discover = %v, %v; want an error and no backends", step.name, set.Backends, err)
			}
		} else {
			if err != nil {
				t.Fatalf("%s: Discover: %v", step.name, err)
			}
			checkDiscovered(t, set.Backends, step.want)
			results, wants = append(results, set.Backends), append(wants, step.want)
		}
		for i := range results {
			checkDiscovered(t, results[i], wants[i])
		}
	}
}

func TestDNSTimesOutOnSilentServer(t *testing.T) {
	s := startTestDNS(t, "app.test. 0 IN A 192.0.2.1")
	s.setSilent(true)
	d, err := NewDNS(DNSConfig{Names: []DNSName{dnsName("app.test.:80")}, Server: s.addr, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	set, err := discoverBounded(t, d)
	if err == nil {
		t.Fatalf("Discover against a silent server returned %v", set.Backends)
	}
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsTimeout {
		t.Fatalf("error %v is not a DNS timeout", err)
	}
	if !errors.Is(err, ErrResolve) || !strings.Contains(err.Error(), "app.test.:80") {
		t.Fatalf("error %q does not wrap ErrResolve naming app.test.:80", err)
	}
	if s.queryCount(dns.TypeA) == 0 {
		t.Fatal("the resolver never queried the silent server")
	}
}

func TestDNSHonoursCallerContext(t *testing.T) {
	s := startTestDNS(t, "app.test. 0 IN A 192.0.2.1")
	s.setSilent(true)
	d := newTestDNS(t, s, "", dnsName("app.test.:80"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Discover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Discover with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestDNSOrderIsStable checks that answers in a new order every time give
// the same list every time.
func TestDNSOrderIsStable(t *testing.T) {
	s := startTestDNS(t,
		"app.test. 0 IN A 203.0.113.3", "app.test. 0 IN A 192.0.2.20", "app.test. 0 IN A 198.51.100.1",
		"app.test. 0 IN AAAA 2001:db8::2", "app.test. 0 IN AAAA 2001:db8::1",
		"_http._tcp.svc.test. 0 IN SRV 1 3 80 c.test.", "_http._tcp.svc.test. 0 IN SRV 1 2 80 a.test.",
		"_http._tcp.svc.test. 0 IN SRV 1 1 80 b.test.",
	)
	d := newTestDNS(t, s, "", dnsName("app.test.:80"), dnsName("_http._tcp.svc.test."))
	want := []Backend{
		MustBackend("192.0.2.20:80", 1), MustBackend("198.51.100.1:80", 1), MustBackend("203.0.113.3:80", 1),
		MustBackend("[2001:db8::1]:80", 1), MustBackend("[2001:db8::2]:80", 1),
		MustBackend("a.test:80", 2), MustBackend("b.test:80", 1), MustBackend("c.test:80", 3),
	}
	for range 6 {
		set, err := discoverBounded(t, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		checkDiscovered(t, set.Backends, want)
	}
}

// TestDNSConcurrentDiscover runs Discover from several goroutines at once;
// run with -race.
func TestDNSConcurrentDiscover(t *testing.T) {
	s := startTestDNS(t, "a.test. 0 IN A 192.0.2.1", "b.test. 0 IN A 192.0.2.2")
	d := newTestDNS(t, s, "ip4", dnsName("a.test.:80"), dnsName("b.test.:80"))
	want := []Backend{MustBackend("192.0.2.1:80", 1), MustBackend("192.0.2.2:80", 1)}
	const callers = 4
	type result struct {
		set Set
		err error
	}
	results := make(chan result, callers)
	for range callers {
		go func() {
			set, err := d.Discover(context.Background())
			results <- result{set, err}
		}()
	}
	deadline := time.After(dnsTestWait)
	for range callers {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("Discover: %v", r.err)
			}
			checkDiscovered(t, r.set.Backends, want)
		case <-deadline:
			t.Fatal("concurrent Discover calls did not return")
		}
	}
}

func TestNewDNSRejects(t *testing.T) {
	valid := []DNSName{dnsName("app.test.:80")}
	tests := []struct {
		name     string
		cfg      DNSConfig
		wantErr  error
		wantText string
	}{
		{"no names", DNSConfig{}, ErrBadDNSConfig, "no names"},
		{"empty name", DNSConfig{Names: []DNSName{dnsName("")}}, ErrBadAddress, `names[0]: bad backend address: empty name`},
		{"no port", DNSConfig{Names: []DNSName{dnsName("app.test")}}, ErrBadAddress, `"app.test"`},
		{"empty host", DNSConfig{Names: []DNSName{dnsName(":80")}}, ErrBadAddress, `":80"`},
		{"port zero", DNSConfig{Names: []DNSName{dnsName("app.test:0")}}, ErrBadAddress, `"app.test:0"`},
		{"port too big", DNSConfig{Names: []DNSName{dnsName("app.test:65536")}}, ErrBadAddress, `"app.test:65536"`},
		{"named port", DNSConfig{Names: []DNSName{dnsName("app.test:http")}}, ErrBadAddress, `"app.test:http"`},
		{"bad host", DNSConfig{Names: []DNSName{dnsName("app..test:80")}}, ErrBadAddress, `"app..test:80"`},
		{"unix socket", DNSConfig{Names: []DNSName{dnsName("unix:/run/app.sock")}}, ErrBadAddress, `"unix:/run/app.sock"`},
		{"SRV without domain", DNSConfig{Names: []DNSName{dnsName("_http._tcp")}}, ErrBadAddress, `"_http._tcp"`},
		{"SRV without proto label", DNSConfig{Names: []DNSName{dnsName("_http.tcp.svc.test")}}, ErrBadAddress, `"_http.tcp.svc.test"`},
		{"SRV with bad label", DNSConfig{Names: []DNSName{dnsName("_http._tcp.-svc.test")}}, ErrBadAddress, `"_http._tcp.-svc.test"`},
		{"SRV with weight", DNSConfig{Names: []DNSName{{Name: "_http._tcp.svc.test", Weight: 2}}}, ErrBadWeight, "_http._tcp.svc.test"},
		{"negative weight", DNSConfig{Names: []DNSName{{Name: "app.test:80", Weight: -1}}}, ErrBadWeight, "-1 for app.test:80"},
		{"weight above MaxWeight", DNSConfig{Names: []DNSName{{Name: "app.test:80", Weight: MaxWeight + 1}}}, ErrBadWeight, "app.test:80"},
		{"name twice", DNSConfig{Names: []DNSName{dnsName("app.test:80"), dnsName("APP.test:80")}}, ErrDuplicate, `names[1]: duplicate backend address: "APP.test:80"`},
		{"bad second name", DNSConfig{Names: []DNSName{dnsName("app.test:80"), dnsName("bad name:80")}}, ErrBadAddress, `names[1]`},
		{"bad network", DNSConfig{Names: valid, Network: "tcp"}, ErrBadDNSConfig, `"tcp"`},
		{"negative timeout", DNSConfig{Names: valid, Timeout: -time.Second}, ErrBadDNSConfig, "-1s"},
		{"server by name", DNSConfig{Names: valid, Server: "ns.test:53"}, ErrBadDNSConfig, `"ns.test:53"`},
		{"server port zero", DNSConfig{Names: valid, Server: "127.0.0.1:0"}, ErrBadDNSConfig, `"127.0.0.1:0"`},
		{"server and resolver", DNSConfig{Names: valid, Server: "127.0.0.1", Resolver: &net.Resolver{}}, ErrBadDNSConfig, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDNS(tt.cfg)
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrBadDNSConfig) {
				t.Fatalf("NewDNS error = %v, want %v and %v", err, tt.wantErr, ErrBadDNSConfig)
			}
			if d != nil {
				t.Error("NewDNS returned a DNS with its error")
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not name %s", err, tt.wantText)
			}
		})
	}
}

func TestNewDNSDefaults(t *testing.T) {
	tests := []struct {
		name        string
		cfg         DNSConfig
		wantNetwork string
		wantServer  string
		wantTimeout time.Duration
		wantWeight  int
	}{
		{
			name:        "zero values",
			cfg:         DNSConfig{Names: []DNSName{dnsName("app.test:80")}},
			wantNetwork: "ip", wantTimeout: DefaultDNSTimeout, wantWeight: 1,
		},
		{
			name:        "IPv4 server without port",
			cfg:         DNSConfig{Names: []DNSName{{Name: "app.test:80", Weight: 7}}, Server: "127.0.0.1", Network: "ip6", Timeout: time.Second},
			wantNetwork: "ip6", wantServer: "127.0.0.1:53", wantTimeout: time.Second, wantWeight: 7,
		},
		{
			name:        "IPv6 server without port",
			cfg:         DNSConfig{Names: []DNSName{dnsName("app.test:80")}, Server: "[::1]"},
			wantNetwork: "ip", wantServer: "[::1]:53", wantTimeout: DefaultDNSTimeout, wantWeight: 1,
		},
		{
			name:        "IPv6 server with port",
			cfg:         DNSConfig{Names: []DNSName{dnsName("app.test:80")}, Server: "[::1]:5353"},
			wantNetwork: "ip", wantServer: "[::1]:5353", wantTimeout: DefaultDNSTimeout, wantWeight: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDNS(tt.cfg)
			if err != nil {
				t.Fatalf("NewDNS: %v", err)
			}
			if d.network != tt.wantNetwork || d.server != tt.wantServer || d.timeout != tt.wantTimeout || d.queries[0].weight != tt.wantWeight {
				t.Errorf("network %q server %q timeout %v weight %d; want %q %q %v %d",
					d.network, d.server, d.timeout, d.queries[0].weight,
					tt.wantNetwork, tt.wantServer, tt.wantTimeout, tt.wantWeight)
			}
			if tt.wantServer == "" && d.resolver != net.DefaultResolver {
				t.Error("no Server and no Resolver, but not net.DefaultResolver")
			}
		})
	}
}
