package lb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultDNSTimeout bounds one DNS Discover call when DNSConfig.Timeout is
// zero. It is shorter than the resolver's own retries (two tries of five
// seconds each by default) so that a dead DNS server cannot stall the
// LoadBalancer's update loop for long.
const DefaultDNSTimeout = 5 * time.Second

// defaultDNSPort is the port of a DNSConfig.Server given without one.
const defaultDNSPort = "53"

// Errors of DNS discovery. They are wrapped with the offending value, so
// test with errors.Is.
var (
	// ErrBadDNSConfig marks a DNSConfig that NewDNS rejects.
	ErrBadDNSConfig = errors.New("bad DNS discovery config")
	// ErrResolve marks a Discover call that failed because a name could
	// not be resolved. The resolver's *net.DNSError is wrapped too, so
	// errors.As tells a timeout from NXDOMAIN.
	ErrResolve = errors.New("DNS discovery failed")
)

var _ Discovery = (*DNS)(nil)

// DNSName is one name for DNS discovery to resolve.
type DNSName struct {
	// Name is either "host:port", looked up as A and AAAA records (each
	// address found becomes the backend ip:port), or an SRV name
	// "_service._proto.domain", whose records give both targets and ports.
	// Write names fully qualified ("app.example.com.:80") to keep the
	// resolver from trying search domains.
	Name string
	// Weight is the weight of every address a host:port name resolves to,
	// 1 to MaxWeight; zero means 1. It must be zero for an SRV name, whose
	// records carry their own weights.
	Weight int
}

// DNSConfig configures DNS discovery.
type DNSConfig struct {
	// Names are the names to resolve; at least one, none twice.
	Names []DNSName
	// Network picks the address families of host:port names: "ip4" (A
	// only), "ip6" (AAAA only), or "ip" (both, the default). SRV targets
	// are reported as names, so it does not apply to them.
	Network string
	// Resolver resolves the names; nil means net.DefaultResolver. Leave it
	// nil when Server is set.
	Resolver *net.Resolver
	// Server, if set, sends every query to this DNS server ("ip:port", or
	// "ip" for port 53) through Go's own resolver, instead of the servers
	// in /etc/resolv.conf. The hosts file is still consulted for host:port
	// names, as for any Go lookup.
	Server string
	// Timeout bounds each Discover call, all names together; zero means
	// DefaultDNSTimeout.
	Timeout time.Duration
}

// DNS is a Discovery that resolves names on every Discover call.
//
// The backends are reported in a deterministic order: by the order of
// Names, then by address within a name (numerically for IPs, by target and
// port for SRV), so an unchanged answer yields an identical list whatever
// order the server returned its records in, and the LoadBalancer does not
// rebuild its selector for nothing.
//
// An address reached through several names (or several SRV records) is
// reported once, at its first position, with the sum of its weights capped
// at MaxWeight: listing a server twice gives it both shares, whichever name
// comes first.
//
// Discover fails as a whole if any name fails (SERVFAIL, timeout, NXDOMAIN,
// no records): reporting only the names that resolved would shrink the pool
// because of a resolver blip, whereas an error makes the LoadBalancer keep
// its last good set. The error names every name that failed.
//
// For SRV names, as RFC 2782 prescribes, only the records of the lowest
// priority value are used; the others are standbys that a DNS operator
// promotes by changing priorities (health checks, not DNS, handle a dead
// server within the group in use). A record of weight 0 ("very rarely
// selected" in RFC 2782) gets weight 1, the smallest backend weight, so it
// is as likely as a record of weight 1; a weight above MaxWeight is capped.
// A target of "." means the service is decidedly not available there and
// is skipped, so a name whose only record is "." contributes no backends:
// that is the DNS operator's statement, not a failure. Targets are reported
// as names ("host.example.com:8080") for the dialer to resolve.
//
// A DNS is immutable and safe for concurrent use.
type DNS struct {
	queries  []dnsQuery
	network  string
	resolver *net.Resolver
	server   string // the DNSConfig.Server address, for error messages
	timeout  time.Duration
}

// dnsQuery is one validated DNSName.
type dnsQuery struct {
	name   string // as configured, for error messages
	host   string // the host of a host:port name, or the SRV name
	port   uint16 // 0 for an SRV name
	weight int
	srv    bool
}

// dnsTarget is one address found for a name, before it becomes a Backend.
type dnsTarget struct {
	host   string
	port   uint16
	weight int
}

// NewDNS validates cfg and returns a DNS discovery. The error names the
// offending value.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	queries, err := dnsQueries(cfg.Names)
	if err != nil {
		return nil, err
	}
	network, err := dnsNetwork(cfg.Network)
	if err != nil {
		return nil, err
	}
	timeout, err := dnsTimeout(cfg.Timeout)
	if err != nil {
		return nil, err
	}
	resolver, server, err := dnsResolver(cfg.Resolver, cfg.Server)
	if err != nil {
		return nil, err
	}
	return &DNS{queries: queries, network: network, resolver: resolver, server: server, timeout: timeout}, nil
}

// Discover resolves every name, concurrently, and returns the merged
// backends. On any failure it returns an error and an empty Set.
func (d *DNS) Discover(ctx context.Context) (Set, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	found := make([][]dnsTarget, len(d.queries))
	errs := make([]error, len(d.queries))
	var wg sync.WaitGroup
	for i := range d.queries {
		wg.Go(func() { found[i], errs[i] = d.resolve(ctx, &d.queries[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Set{}, err
	}
	backends, err := mergeDNSTargets(d.queries, found)
	if err != nil {
		return Set{}, err
	}
	return Set{Backends: backends}, nil
}

// resolve looks up one name and returns its targets sorted.
func (d *DNS) resolve(ctx context.Context, q *dnsQuery) ([]dnsTarget, error) {
	var (
		targets []dnsTarget
		err     error
	)
	if q.srv {
		targets, err = d.lookupSRV(ctx, q)
	} else {
		targets, err = d.lookupHost(ctx, q)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrResolve, q.name, d.blameServer(err))
	}
	return targets, nil
}

// lookupHost resolves a host:port name to one target per address.
func (d *DNS) lookupHost(ctx context.Context, q *dnsQuery) ([]dnsTarget, error) {
	ips, err := d.resolver.LookupNetIP(ctx, d.network, q.host)
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		// An A record may come back as an IPv4-mapped IPv6 address;
		// unmapping keeps one spelling per server.
		addrs[i] = ip.Unmap()
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	// An RRset is a set: the same address twice is one server.
	addrs = slices.Compact(addrs)
	targets := make([]dnsTarget, len(addrs))
	for i, ip := range addrs {
		targets[i] = dnsTarget{host: ip.String(), port: q.port, weight: q.weight}
	}
	return targets, nil
}

// lookupSRV resolves an SRV name to the targets of its lowest priority.
func (d *DNS) lookupSRV(ctx context.Context, q *dnsQuery) ([]dnsTarget, error) {
	_, records, err := d.resolver.LookupSRV(ctx, "", "", q.host)
	if err != nil {
		return nil, err
	}
	records = slices.DeleteFunc(records, func(r *net.SRV) bool { return r.Target == "." })
	if len(records) == 0 {
		return nil, nil
	}
	lowest := slices.MinFunc(records, func(a, b *net.SRV) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
	var targets []dnsTarget
	for _, r := range records {
		if r.Priority != lowest {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(r.Target, "."))
		targets = append(targets, dnsTarget{host: host, port: r.Port, weight: srvWeight(r.Weight)})
	}
	// The resolver shuffles records by weight; sort for a stable list.
	slices.SortFunc(targets, func(a, b dnsTarget) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.port, b.port))
	})
	return targets, nil
}

// srvWeight maps an SRV weight (0 to 65535) to a backend weight.
func srvWeight(w uint16) int {
	return min(max(int(w), 1), MaxWeight)
}

// blameServer rewrites the server named in a resolver error to the one
// actually queried: with DNSConfig.Server the resolver still reports the
// /etc/resolv.conf server it thought it was dialling.
func (d *DNS) blameServer(err error) error {
	var dnsErr *net.DNSError
	if d.server == "" || !errors.As(err, &dnsErr) {
		return err
	}
	fixed := *dnsErr
	fixed.Server = d.server
	return &fixed
}

// mergeDNSTargets turns the targets of every name, in name order, into
// backends, summing the weights of an address found more than once.
func mergeDNSTargets(queries []dnsQuery, found [][]dnsTarget) ([]Backend, error) {
	var backends []Backend
	position := make(map[string]int)
	for i, targets := range found {
		for _, t := range targets {
			b, err := NewBackend(net.JoinHostPort(t.host, strconv.Itoa(int(t.port))), t.weight)
			if err != nil {
				// Only a malformed SRV record (port 0) gets here.
				return nil, fmt.Errorf("%w: %s: %w", ErrResolve, queries[i].name, err)
			}
			if at, seen := position[b.Addr]; seen {
				backends[at].Weight = min(backends[at].Weight+b.Weight, MaxWeight)
				continue
			}
			position[b.Addr] = len(backends)
			backends = append(backends, b)
		}
	}
	return backends, nil
}

// dnsQueries validates the configured names.
func dnsQueries(names []DNSName) ([]dnsQuery, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no names to resolve", ErrBadDNSConfig)
	}
	queries := make([]dnsQuery, len(names))
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		q, err := parseDNSName(n)
		if err != nil {
			return nil, fmt.Errorf("%w: names[%d]: %w", ErrBadDNSConfig, i, err)
		}
		key := q.host + ":" + strconv.Itoa(int(q.port))
		if seen[key] {
			return nil, fmt.Errorf("%w: names[%d]: %w: %q is listed twice", ErrBadDNSConfig, i, ErrDuplicate, n.Name)
		}
		seen[key] = true
		queries[i] = q
	}
	return queries, nil
}

// parseDNSName validates one name: an SRV name if it starts with an
// underscore and has no port, a host:port name otherwise.
func parseDNSName(n DNSName) (dnsQuery, error) {
	if n.Name == "" {
		return dnsQuery{}, fmt.Errorf("%w: empty name: want host:port or _service._proto.domain", ErrBadAddress)
	}
	if strings.HasPrefix(n.Name, "_") && !strings.Contains(n.Name, ":") {
		return parseSRVName(n)
	}
	return parseHostName(n)
}

// parseSRVName validates "_service._proto.domain".
func parseSRVName(n DNSName) (dnsQuery, error) {
	labels := strings.Split(strings.TrimSuffix(n.Name, "."), ".")
	if !validHostname(n.Name) || len(labels) < 3 || !srvLabel(labels[0]) || !srvLabel(labels[1]) {
		return dnsQuery{}, fmt.Errorf("%w: %q: want _service._proto.domain", ErrBadAddress, n.Name)
	}
	if n.Weight != 0 {
		return dnsQuery{}, fmt.Errorf("%w: %d for %s: SRV records carry their own weights", ErrBadWeight, n.Weight, n.Name)
	}
	return dnsQuery{name: n.Name, host: strings.ToLower(n.Name), srv: true}, nil
}

// srvLabel reports whether l is an underscore label such as "_http".
func srvLabel(l string) bool {
	return len(l) > 1 && l[0] == '_'
}

// parseHostName validates "host:port" and its weight.
func parseHostName(n DNSName) (dnsQuery, error) {
	addr, err := ParseAddr(n.Name)
	if err != nil {
		return dnsQuery{}, err
	}
	if strings.HasPrefix(addr, unixPrefix) {
		return dnsQuery{}, fmt.Errorf("%w: %q: a Unix socket has no DNS name: want host:port or _service._proto.domain", ErrBadAddress, n.Name)
	}
	// ParseAddr has checked both parts.
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.ParseUint(portText, 10, 16)
	weight := cmp.Or(n.Weight, 1)
	if weight < 1 || weight > MaxWeight {
		return dnsQuery{}, fmt.Errorf("%w: %d for %s: must be 1 to %d", ErrBadWeight, n.Weight, n.Name, MaxWeight)
	}
	return dnsQuery{name: n.Name, host: host, port: uint16(port), weight: weight}, nil
}

// dnsNetwork validates DNSConfig.Network.
func dnsNetwork(network string) (string, error) {
	switch network {
	case "":
		return "ip", nil
	case "ip", "ip4", "ip6":
		return network, nil
	}
	return "", fmt.Errorf("%w: network %q: want ip, ip4 or ip6", ErrBadDNSConfig, network)
}

// dnsTimeout validates DNSConfig.Timeout.
func dnsTimeout(timeout time.Duration) (time.Duration, error) {
	if timeout < 0 {
		return 0, fmt.Errorf("%w: timeout %v is negative", ErrBadDNSConfig, timeout)
	}
	return cmp.Or(timeout, DefaultDNSTimeout), nil
}

// dnsResolver picks the resolver: the given one, one that queries server,
// or the default. It also returns the normalised server address.
func dnsResolver(resolver *net.Resolver, server string) (*net.Resolver, string, error) {
	if server == "" {
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		return resolver, "", nil
	}
	if resolver != nil {
		return nil, "", fmt.Errorf("%w: set Resolver or Server %q, not both", ErrBadDNSConfig, server)
	}
	addr, err := parseDNSServer(server)
	if err != nil {
		return nil, "", err
	}
	return serverResolver(addr), addr, nil
}

// parseDNSServer validates a DNS server address, "ip:port" or "ip", and
// returns it as ip:port. A host name is refused: resolving the resolver
// would need another resolver.
func parseDNSServer(server string) (string, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(server, "["), "]"), defaultDNSPort
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%w: server %q: want ip:port or ip", ErrBadDNSConfig, server)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%w: server %q: port must be 1 to 65535", ErrBadDNSConfig, server)
	}
	return netip.AddrPortFrom(ip, uint16(p)).String(), nil
}

// serverResolver returns a resolver that sends every query to server, over
// UDP or TCP as Go's resolver chooses (TCP after a truncated UDP answer).
func serverResolver(server string) *net.Resolver {
	var dialer net.Dialer
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, server)
		},
	}
}
