package bgp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// The lab: the test process runs in a network namespace of its own (the
// test binary re-executed under unshare --net), where the Speaker runs;
// BIRD runs in a second namespace; a veth pair joins them.
var (
	weirV4 = netip.MustParseAddr("198.51.100.1")
	birdV4 = netip.MustParseAddr("198.51.100.2")
	weirV6 = netip.MustParseAddr("2001:db8::1")
	birdV6 = netip.MustParseAddr("2001:db8::2")
	vip4   = netip.MustParsePrefix("203.0.113.10/32")
	vip6   = netip.MustParsePrefix("2001:db8:ffff::10/128")
)

// Documentation AS numbers (RFC 5398).
const (
	weirASN = 64497
	birdASN = 64496
)

// inNetnsEnv marks the re-executed test process that runs in a network
// namespace of its own.
const inNetnsEnv = "WEIR_TEST_BGP_IN_NETNS"

// inOwnNetns runs the calling test in a network namespace of its own: it
// re-executes the test binary under unshare --net for this test alone and
// reports false (the outer run is done: the test passed or failed by the
// inner one), or, in the re-executed process, brings lo up and reports
// true: go on. A test needing root skips or fails without it.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	testenv.NeedRoot(t)
	if os.Getenv(inNetnsEnv) == "1" {
		if err := linkUp("lo"); err != nil {
			t.Fatal(err)
		}
		return true
	}
	for _, tool := range []string{"unshare", "bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, fmt.Sprintf("test needs %s (Debian packages util-linux and bird2; scripts/provision installs them): %v", tool, err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP") {
		testenv.SkipOrFail(t, "the test skipped in its network namespace")
	}
	return false
}

func linkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// birdOptions vary BIRD's configuration.
type birdOptions struct {
	password        string // TCP MD5 password of both sessions
	gracefulRestart bool   // "graceful restart on" (else BIRD's default, aware)
}

// bird is BIRD 2 in the lab's second namespace, peering passively (it
// never dials) with the Speaker at weirV4 and weirV6 as "v4" and "v6".
type bird struct{ *testenv.BIRD }

// startBIRD builds the lab's second namespace and veth pair and runs BIRD
// there.
func startBIRD(t *testing.T, opts birdOptions) bird {
	t.Helper()
	ns := testenv.Netns(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "weir0"}, PeerName: "bird0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	peer, err := netlink.LinkByName("bird0")
	if err == nil {
		err = netlink.LinkSetNsFd(peer, int(ns))
	}
	if err != nil {
		t.Fatalf("move bird0 into BIRD's namespace: %v", err)
	}
	if err := testenv.ConfigureLink("weir0", weirV4.String()+"/24", weirV6.String()+"/64"); err != nil {
		t.Fatal(err)
	}
	err = testenv.InNetns(ns, func() error {
		if err := linkUp("lo"); err != nil {
			return err
		}
		return testenv.ConfigureLink("bird0", birdV4.String()+"/24", birdV6.String()+"/64")
	})
	if err != nil {
		t.Fatal(err)
	}
	return bird{testenv.StartBIRD(t, ns, birdConfig(opts))}
}

func birdConfig(opts birdOptions) string {
	var session strings.Builder
	session.WriteString("\tpassive on;\n\thold time 9;\n\tconnect retry time 1;\n")
	if opts.password != "" {
		fmt.Fprintf(&session, "\tpassword %q;\n", opts.password)
	}
	if opts.gracefulRestart {
		session.WriteString("\tgraceful restart on;\n")
	}
	return fmt.Sprintf(`router id %s;
debug protocols { states, routes, events };
protocol device { }
protocol bgp v4 {
	local %s as %d;
	neighbor %s as %d;
%s	ipv4 { import all; export none; };
}
protocol bgp v6 {
	local %s as %d;
	neighbor %s as %d;
%s	ipv6 { import all; export none; };
}
`, birdV4, birdV4, birdASN, weirV4, weirASN, session.String(),
		birdV6, birdASN, weirV6, weirASN, session.String())
}

// waitEstablished waits until both of BIRD's sessions are up.
func (b bird) waitEstablished() {
	for _, p := range []string{"v4", "v6"} {
		// The speaker's first attempt comes within 2 s of Start.
		b.Eventually(10*time.Second, "BIRD's session "+p+" Established", func() (bool, string) { return b.Established(p) })
	}
}

// labSpeaker returns a started Speaker peering with BIRD over IPv4 and
// IPv6, stopped when t ends.
func labSpeaker(t *testing.T, change func(*Config)) *Speaker {
	t.Helper()
	cfg := Config{
		ASN:      weirASN,
		RouterID: weirV4,
		Peers: []PeerConfig{
			{Address: birdV4, ASN: birdASN, HoldTime: 9 * time.Second},
			{Address: birdV6, ASN: birdASN, HoldTime: 9 * time.Second},
		},
		Logger: testLogger(t),
	}
	if change != nil {
		change(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start(t *testing.T, s *Speaker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAnnounceAndWithdrawReachBIRD announces a /32 (before Start) and a
// /128 (after) with communities and finds them in BIRD's table with this
// node's address as next hop; repeats change nothing; withdraws remove
// them from BIRD within a second.
func TestAnnounceAndWithdrawReachBIRD(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	b := startBIRD(t, birdOptions{})
	s := labSpeaker(t, nil)
	communities := []Community{weirASN<<16 | 100, NoExport}
	if err := s.Announce(vip4, communities); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	if err := s.Announce(vip6, communities[:1]); err != nil {
		t.Fatal(err)
	}
	b.waitEstablished()

	want := []struct {
		prefix             netip.Prefix
		via                string
		nextHop, community string
	}{
		{vip4, "via 198.51.100.1 on bird0", "BGP.next_hop: 198.51.100.1", "BGP.community: (64497,100) (65535,65281)"},
		{vip6, "via 2001:db8::1 on bird0", "BGP.next_hop: 2001:db8::1", "BGP.community: (64497,100)"},
	}
	for _, w := range want {
		b.Eventually(5*time.Second, w.prefix.String()+" in BIRD's table", func() (bool, string) {
			r := b.Route(w.prefix)
			return strings.Contains(r, w.via) && strings.Contains(r, w.nextHop) && strings.Contains(r, w.community) &&
				strings.Contains(r, "BGP.as_path: 64497"), r
		})
	}

	// Each peer has been sent the route of its family.
	peers := s.Peers()
	for i, want := range []PeerStatus{
		{Address: birdV4, ASN: birdASN, State: StateEstablished, Announced: []netip.Prefix{vip4}},
		{Address: birdV6, ASN: birdASN, State: StateEstablished, Announced: []netip.Prefix{vip6}},
	} {
		got := peers[i]
		got.Uptime = 0
		if got.Address != want.Address || got.ASN != want.ASN || got.State != want.State || !slices.Equal(got.Announced, want.Announced) || peers[i].Uptime < 0 {
			t.Errorf("Peers()[%d] = %+v, want %+v", i, peers[i], want)
		}
	}

	// Repeats are idempotent and not counted.
	before := s.Stats()
	if err := s.Announce(vip4, communities); err != nil {
		t.Fatal(err)
	}
	if err := s.Withdraw(netip.MustParsePrefix("203.0.113.99/32")); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if after.Announces != 2 || after.Withdraws != 0 || after.Announced != 2 || before.Announces != after.Announces {
		t.Errorf("Stats() after two announces and repeats = %+v, want 2 announces, 0 withdraws, 2 announced", after)
	}
	if got := s.Announced(); len(got) != 2 || got[0].Prefix != vip4 || got[1].Prefix != vip6 {
		t.Errorf("Announced() = %v, want %v and %v", got, vip4, vip6)
	}

	for _, p := range []netip.Prefix{vip4, vip6} {
		if err := s.Withdraw(p); err != nil {
			t.Fatal(err)
		}
		b.Eventually(time.Second, p.String()+" gone from BIRD's table", func() (bool, string) {
			r := b.Route(p)
			return r == "", r
		})
	}
	st := s.Stats()
	if st.Withdraws != 2 || st.Announced != 0 || len(st.Peers) != 2 {
		t.Errorf("Stats() after withdrawing both = %+v, want 2 withdraws, none announced, 2 peers", st)
	}
	for _, p := range st.Peers {
		if p.State != StateEstablished || len(p.Announced) != 0 {
			t.Errorf("Stats().Peers after withdrawing both has %+v, want established with nothing announced", p)
		}
	}
}

// TestShutdownWithdrawsThenWaitsThenCloses checks the order of a graceful
// stop from BIRD's side: the routes leave BIRD's table while its sessions
// are still Established, the sessions stay up for the converge time, and
// BIRD's log shows the withdraw before the session going down.
func TestShutdownWithdrawsThenWaitsThenCloses(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	b := startBIRD(t, birdOptions{})
	s := labSpeaker(t, nil)
	start(t, s)
	for _, p := range []netip.Prefix{vip4, vip6} {
		if err := s.Announce(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	b.waitEstablished()
	for _, p := range []netip.Prefix{vip4, vip6} {
		b.Eventually(5*time.Second, p.String()+" in BIRD's table", func() (bool, string) {
			r := b.Route(p)
			return r != "", r
		})
	}

	const converge = 2 * time.Second
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx, converge)
	}()
	// Both routes gone while both sessions are still up.
	b.Eventually(time.Second, "routes withdrawn with the sessions still up", func() (bool, string) {
		r4, r6 := b.Route(vip4), b.Route(vip6)
		up4, s4 := b.Established("v4")
		up6, s6 := b.Established("v6")
		return r4 == "" && r6 == "" && up4 && up6, r4 + r6 + s4 + s6
	})
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(began); took < converge {
		t.Errorf("Shutdown returned after %v, before the converge time %v", took, converge)
	}
	for _, p := range []string{"v4", "v6"} {
		b.Eventually(5*time.Second, "BIRD's session "+p+" down", func() (bool, string) {
			up, s := b.Established(p)
			return !up, s
		})
	}
	for _, p := range s.Peers() {
		if p.State != StateIdle {
			t.Errorf("Peers() after Shutdown has %+v, want idle", p)
		}
	}
	if err := s.Announce(vip4, nil); !errors.Is(err, ErrStopped) {
		t.Errorf("Announce after Shutdown: %v, want ErrStopped", err)
	}

	// BIRD's log: each protocol's "removed" comes before its session
	// leaves Established, by the converge time.
	lines := logLines(t, b.Log)
	for _, proto := range []string{"v4", "v6"} {
		removed, down := -1, -1
		for i, line := range lines {
			if !strings.Contains(line, "<TRACE> "+proto+":") && !strings.Contains(line, "<TRACE> "+proto+".") {
				continue
			}
			if removed < 0 && strings.Contains(line, "removed") {
				removed = i
			}
			if down < 0 && strings.Contains(line, "State changed to stop") {
				down = i
			}
		}
		if removed < 0 || down < 0 || removed > down {
			t.Errorf("BIRD's log for %s: withdraw at line %d, session down at line %d; want the withdraw first", proto, removed, down)
			continue
		}
		// The speaker starts its wait before BIRD logs the withdraw;
		// allow for that delivery.
		if held := testenv.BIRDLogTime(t, lines[down]).Sub(testenv.BIRDLogTime(t, lines[removed])); held < converge*9/10 {
			t.Errorf("BIRD's log for %s: session down %v after the withdraw, want about the converge time %v", proto, held, converge)
		}
	}
}

func logLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestMD5PasswordSession opens both sessions with TCP MD5 signatures,
// which BIRD requires of every segment once a password is set: an
// unsigned SYN from the speaker would never be answered.
func TestMD5PasswordSession(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	if err := md5Supported(); err != nil {
		testenv.SkipOrFail(t, "the kernel has no TCP MD5 signatures (CONFIG_TCP_MD5SIG): "+err.Error())
	}
	const password = "weir-test-secret"
	b := startBIRD(t, birdOptions{password: password})
	s := labSpeaker(t, func(c *Config) {
		for i := range c.Peers {
			c.Peers[i].Password = password
		}
	})
	start(t, s)
	if err := s.Announce(vip4, nil); err != nil {
		t.Fatal(err)
	}
	b.waitEstablished()
	b.Eventually(5*time.Second, vip4.String()+" in BIRD's table", func() (bool, string) {
		r := b.Route(vip4)
		return r != "", r
	})
}

// md5Supported sets a TCP MD5 key on a socket, as the speaker does.
func md5Supported() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sig := unix.TCPMD5Sig{Keylen: 4}
	copy(sig.Key[:], "test")
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sig.Addr))
	sa.Family = unix.AF_INET
	sa.Addr = birdV4.As4()
	return unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
}

// TestListenOrNot checks that without Config.Listen the speaker opens no
// listening socket at all (it dials BIRD, which never dials), and with it
// listens where told.
func TestListenOrNot(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	b := startBIRD(t, birdOptions{})
	tests := []struct {
		name   string
		listen netip.AddrPort
		want   []string // listening sockets, as /proc/net/tcp* local addresses (198.51.100.1:179 is 016433C6:00B3)
	}{
		{"none", netip.AddrPort{}, nil},
		{"ipv4", netip.AddrPortFrom(weirV4, 179), []string{"016433C6:00B3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := labSpeaker(t, func(c *Config) { c.Listen = tt.listen })
			start(t, s)
			b.waitEstablished()
			got := listeningSockets(t)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("listening sockets in the speaker's namespace: %v, want %v", got, tt.want)
			}
			s.Stop()
			for _, p := range []string{"v4", "v6"} {
				b.Eventually(5*time.Second, "BIRD's session "+p+" down", func() (bool, string) {
					up, s := b.Established(p)
					return !up, s
				})
			}
		})
	}
}

// listeningSockets lists the namespace's listening TCP sockets and bound
// UDP sockets ("UDP " prefixed) from /proc/net, which follows the
// namespace of the process's main thread: here, the test's own.
func listeningSockets(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, file := range []string{"tcp", "tcp6", "udp", "udp6"} {
		lines := logLines(t, "/proc/net/"+file)
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			switch {
			case strings.HasPrefix(file, "tcp") && f[3] == "0A": // TCP_LISTEN
				out = append(out, f[1])
			case strings.HasPrefix(file, "udp"):
				out = append(out, "UDP "+f[1])
			}
		}
	}
	return out
}

// TestGracefulRestartCapability checks what BIRD learns from the OPEN:
// with Config.GracefulRestart the speaker advertises graceful restart
// with its restart time for the session's family; without, it does not.
func TestGracefulRestartCapability(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	b := startBIRD(t, birdOptions{gracefulRestart: true})
	tests := []struct {
		name    string
		restart time.Duration
		want    bool
	}{
		{"off", 0, false},
		{"120s", 120 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := labSpeaker(t, func(c *Config) { c.GracefulRestart = tt.restart })
			start(t, s)
			b.waitEstablished()
			for _, proto := range []string{"v4", "v6"} {
				out, err := b.Birdc("show protocols all " + proto)
				if err != nil {
					t.Fatal(err)
				}
				caps := neighborCaps(out)
				has := strings.Contains(caps, "Graceful restart") &&
					strings.Contains(caps, "Restart time: 120") &&
					strings.Contains(caps, "AF supported: ipv"+proto[1:])
				if has != tt.want {
					t.Errorf("%s: graceful restart advertised = %v, want %v; BIRD's neighbor capabilities:\n%s", proto, has, tt.want, caps)
				}
			}
			s.Stop()
			for _, p := range []string{"v4", "v6"} {
				b.Eventually(5*time.Second, "BIRD's session "+p+" down", func() (bool, string) {
					up, s := b.Established(p)
					return !up, s
				})
			}
		})
	}
}

// neighborCaps cuts the "Neighbor capabilities" section out of birdc's
// "show protocols all", so that BIRD's own (local) capabilities do not
// count.
func neighborCaps(out string) string {
	_, after, ok := strings.Cut(out, "Neighbor capabilities")
	if !ok {
		return ""
	}
	if i := strings.Index(after, "Session:"); i >= 0 {
		after = after[:i]
	}
	return after
}

// routeWatch polls BIRD's table for a set of prefixes every 20 ms, from
// start until stop (bounded by a minute), and counts the polls in which
// each was missing.
type routeWatch struct {
	b        bird
	prefixes []netip.Prefix
	done     chan struct{}
	stopped  chan struct{}

	polls   int
	missing map[netip.Prefix]int
	errs    []error
}

func watchRoutes(b bird, prefixes ...netip.Prefix) *routeWatch {
	w := &routeWatch{b: b, prefixes: prefixes, done: make(chan struct{}), stopped: make(chan struct{}), missing: map[netip.Prefix]int{}}
	go w.run()
	return w
}

func (w *routeWatch) run() {
	defer close(w.stopped)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return
		case <-time.After(20 * time.Millisecond):
		}
		w.polls++
		for _, p := range w.prefixes {
			out, err := w.b.Birdc("show route " + p.String())
			if err != nil && !strings.Contains(out, "Network not found") {
				w.errs = append(w.errs, err)
				continue
			}
			if !strings.Contains(out, p.String()) {
				w.missing[p]++
			}
		}
	}
}

// stop ends the watch and returns the number of polls.
func (w *routeWatch) stop() int {
	close(w.done)
	<-w.stopped
	return w.polls
}

// TestReleaseAndResumeKeepRoutes hands the routes from one speaker to its
// successor as weir's upgrades do: the first closes its sessions with
// Release, the second re-opens them with Resume, having announced the
// IPv4 VIP again but not the IPv6 one. With graceful restart on at BIRD,
// the IPv4 route never leaves BIRD's table (polled every 20 ms) and BIRD
// never logs its removal; the IPv6 route, which the successor did not
// announce, is withdrawn once the successor's End-of-RIB arrives.
func TestReleaseAndResumeKeepRoutes(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	testReleaseAndResume(t, birdOptions{gracefulRestart: true})
}

// TestReleaseAndResumeKeepRoutesBIRDAware is the same hand-over with
// BIRD's default, "graceful restart aware": BIRD helps a restarting peer
// without restarting gracefully itself, which is all weir needs.
func TestReleaseAndResumeKeepRoutesBIRDAware(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	testReleaseAndResume(t, birdOptions{})
}

func testReleaseAndResume(t *testing.T, opts birdOptions) {
	b := startBIRD(t, opts)
	gr := func(c *Config) { c.GracefulRestart = 30 * time.Second }
	old := labSpeaker(t, gr)
	for _, p := range []netip.Prefix{vip4, vip6} {
		if err := old.Announce(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	start(t, old)
	b.waitEstablished()
	for _, p := range []netip.Prefix{vip4, vip6} {
		b.Eventually(5*time.Second, p.String()+" in BIRD's table", func() (bool, string) {
			r := b.Route(p)
			return r != "", r
		})
	}
	logStart := len(logLines(t, b.Log))

	w := watchRoutes(b, vip4)
	released := time.Now()
	old.Release()
	if err := old.Announce(vip4, nil); !errors.Is(err, ErrStopped) {
		t.Errorf("Announce after Release: %v, want ErrStopped", err)
	}
	// BIRD saw the sessions close and keeps the routes, stale.
	for _, p := range []string{"v4", "v6"} {
		b.Eventually(5*time.Second, "BIRD's session "+p+" down after Release", func() (bool, string) {
			up, s := b.Established(p)
			return !up, s
		})
	}
	for _, p := range []netip.Prefix{vip4, vip6} {
		if r := b.Route(p); r == "" {
			t.Errorf("%v left BIRD's table when the sessions closed by Release", p)
		}
	}

	successor := labSpeaker(t, gr)
	if err := successor.Announce(vip4, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := successor.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitEstablished()
	b.Eventually(5*time.Second, vip6.String()+", not announced again, withdrawn after the End-of-RIB", func() (bool, string) {
		r := b.Route(vip6)
		return r == "", r
	})
	resumed := time.Since(released)
	polls := w.stop()
	if len(w.errs) > 0 {
		t.Fatalf("polling BIRD: %v", errors.Join(w.errs...))
	}
	if polls < 10 || w.missing[vip4] > 0 {
		t.Errorf("%v missing from BIRD's table in %d of %d polls across the hand-over, want 0 (of at least 10)", vip4, w.missing[vip4], polls)
	}
	if r := b.Route(vip4); !strings.Contains(r, "via 198.51.100.1 on bird0") {
		t.Errorf("%v after the hand-over: %s", vip4, r)
	}
	// BIRD's log since the hand-over began: the IPv4 route is never
	// removed, the IPv6 route is, and both sessions were taken as
	// graceful restarts, ended by the successor's End-of-RIB.
	lines := logLines(t, b.Log)[logStart:]
	var removed4, removed6, restarts, done int
	for _, line := range lines {
		switch {
		case strings.Contains(line, vip4.String()) && strings.Contains(line, "removed"):
			removed4++
		case strings.Contains(line, vip6.String()) && strings.Contains(line, "removed"):
			removed6++
		case strings.Contains(line, "Neighbor graceful restart detected"):
			restarts++
		case strings.Contains(line, "Neighbor graceful restart done"): // the End-of-RIB
			done++
		}
	}
	if removed4 != 0 || removed6 == 0 || restarts != 2 || done != 2 {
		t.Errorf("BIRD's log across the hand-over: %v removed %d times (want 0), %v removed %d times (want > 0), %d graceful restarts detected and %d done (want 2 and 2):\n%s",
			vip4, removed4, vip6, removed6, restarts, done, strings.Join(lines, "\n"))
	}
	t.Logf("%v present in all %d polls; release to the successor's End-of-RIB: %v", vip4, polls, resumed)
}
