package bgp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseCommunity(t *testing.T) {
	tests := []struct {
		in   string
		want Community
		err  string
	}{
		{"64497:100", 64497<<16 | 100, ""},
		{"0:0", 0, ""},
		{"65535:65535", 0xFFFFFFFF, ""},
		{"no-export", NoExport, ""},
		{"NO-ADVERTISE", NoAdvertise, ""},
		{"no-export-subconfed", NoExportSubconfed, ""},
		{"65536:1", 0, "AS part"},
		{"1:65536", 0, "value part"},
		{"-1:1", 0, "AS part"},
		{"100", 0, "want ASN:VALUE"},
		{"", 0, "want ASN:VALUE"},
	}
	for _, tt := range tests {
		got, err := ParseCommunity(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseCommunity(%q) error = %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCommunity(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
		if back, _ := ParseCommunity(got.String()); back != got {
			t.Errorf("%q: String() = %q does not parse back", tt.in, got.String())
		}
	}
	if _, err := ParseCommunities([]string{"1:1", "x"}); err == nil {
		t.Error("ParseCommunities accepted a bad community")
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{
			ASN:      64497,
			RouterID: netip.MustParseAddr("192.0.2.1"),
			Peers:    []PeerConfig{{Address: netip.MustParseAddr("192.0.2.254"), ASN: 64496}},
		}
	}
	tests := []struct {
		name   string
		change func(*Config)
		err    string
	}{
		{"good", func(*Config) {}, ""},
		{"listen", func(c *Config) { c.Listen = netip.MustParseAddrPort("192.0.2.1:179") }, ""},
		{"no asn", func(c *Config) { c.ASN = 0 }, "local ASN"},
		{"ipv6 router id", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, "router id"},
		{"no router id", func(c *Config) { c.RouterID = netip.Addr{} }, "router id"},
		{"listen port 0", func(c *Config) { c.Listen = netip.AddrPortFrom(c.RouterID, 0) }, "needs a port"},
		{"restart too long", func(c *Config) { c.GracefulRestart = time.Hour + time.Second*496 }, "graceful restart"},
		{"peer no address", func(c *Config) { c.Peers[0].Address = netip.Addr{} }, "address is required"},
		{"peer no asn", func(c *Config) { c.Peers[0].ASN = 0 }, "ASN is required"},
		{"hold time 1s", func(c *Config) { c.Peers[0].HoldTime = time.Second }, "hold time"},
		{"local address family", func(c *Config) { c.Peers[0].LocalAddress = netip.MustParseAddr("2001:db8::1") }, "another address family"},
		{"duplicate peer", func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) }, "listed twice"},
		{"ipv6 peer", func(c *Config) { c.Peers[0].Address = netip.MustParseAddr("2001:db8::2") }, ""},
		{"link-local peer", func(c *Config) { c.Peers[0].Address = netip.MustParseAddr("fe80::2") }, "link-local"},
		{"link-local local address", func(c *Config) {
			c.Peers[0].Address, c.Peers[0].LocalAddress = netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("fe80::1")
		}, "link-local"},
		{"ipv4 link-local peer", func(c *Config) {
			c.Peers[0].Address, c.Peers[0].LocalAddress = netip.MustParseAddr("169.254.0.1"), netip.MustParseAddr("169.254.0.2")
		}, ""},
	}
	for _, tt := range tests {
		cfg := good()
		tt.change(&cfg)
		_, err := New(cfg)
		if tt.err == "" && err != nil {
			t.Errorf("%s: New: %v", tt.name, err)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: New error = %v, want one containing %q", tt.name, err, tt.err)
		}
	}
}

func TestHostRoutesOnly(t *testing.T) {
	s, err := New(Config{ASN: 64497, RouterID: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"203.0.113.0/24", "2001:db8::/64", "203.0.113.10/31"} {
		if err := s.Announce(netip.MustParsePrefix(p), nil); err == nil {
			t.Errorf("Announce(%s) accepted a route that is not a host route", p)
		}
	}
	if err := s.Announce(netip.Prefix{}, nil); err == nil {
		t.Error("Announce accepted an invalid prefix")
	}
	// An IPv4-mapped /128 is the /32.
	if err := s.Announce(netip.MustParsePrefix("::ffff:203.0.113.10/128"), nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Announced(); len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("203.0.113.10/32") {
		t.Errorf("Announced() = %v, want 203.0.113.10/32", got)
	}
}

// TestCountsBeforeStart announces, re-announces, changes and withdraws
// routes on a speaker never started: the table and counters follow, and
// Shutdown withdraws what is left without waiting (no session to
// converge).
func TestCountsBeforeStart(t *testing.T) {
	s, err := New(Config{ASN: 64497, RouterID: netip.MustParseAddr("192.0.2.1"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("2001:db8::1/128")
	steps := []struct {
		name                 string
		do                   func() error
		announces, withdraws uint64
		announced            []netip.Prefix
	}{
		{"announce a", func() error { return s.Announce(a, nil) }, 1, 0, []netip.Prefix{a}},
		{"announce a again", func() error { return s.Announce(a, nil) }, 1, 0, []netip.Prefix{a}},
		{"a with a community", func() error { return s.Announce(a, []Community{NoExport}) }, 2, 0, []netip.Prefix{a}},
		{"announce b", func() error { return s.Announce(b, nil) }, 3, 0, []netip.Prefix{a, b}},
		{"withdraw a", func() error { return s.Withdraw(a) }, 3, 1, []netip.Prefix{b}},
		{"withdraw a again", func() error { return s.Withdraw(a) }, 3, 1, []netip.Prefix{b}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		stats := s.Stats()
		var got []netip.Prefix
		for _, r := range s.Announced() {
			got = append(got, r.Prefix)
		}
		if stats.Announces != st.announces || stats.Withdraws != st.withdraws || !slices.Equal(got, st.announced) || stats.Announced != len(got) {
			t.Errorf("after %s: stats %+v, announced %v; want %d announces, %d withdraws, %v", st.name, stats, got, st.announces, st.withdraws, st.announced)
		}
	}
	began := time.Now()
	if err := s.Shutdown(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if time.Since(began) > time.Minute {
		t.Error("Shutdown of a speaker never started waited for convergence")
	}
	if st := s.Stats(); st.Withdraws != 2 || st.Announced != 0 {
		t.Errorf("after Shutdown: %+v, want 2 withdraws, none announced", st)
	}
	if err := s.Announce(a, nil); !errors.Is(err, ErrStopped) {
		t.Errorf("Announce after Shutdown: %v, want ErrStopped", err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Shutdown: %v, want ErrStopped", err)
	}
}

func TestSessionStateString(t *testing.T) {
	want := []string{"unknown", "idle", "connect", "active", "opensent", "openconfirm", "established"}
	for i, w := range want {
		if got := SessionState(i).String(); got != w {
			t.Errorf("SessionState(%d) = %q, want %q", i, got, w)
		}
	}
	if got := SessionState(99).String(); got != "SessionState(99)" {
		t.Errorf("SessionState(99) = %q", got)
	}
}

// TestEndings checks each way a speaker ends, before it ever started:
// afterwards nothing starts or changes, and only Shutdown withdraws (and
// counts) the routes; Release and Stop leave them to the routers.
func TestEndings(t *testing.T) {
	a := netip.MustParsePrefix("203.0.113.1/32")
	tests := []struct {
		name      string
		end       func(*Speaker)
		withdraws uint64
	}{
		{"Stop", (*Speaker).Stop, 0},
		{"Release", (*Speaker).Release, 0},
		{"Shutdown", func(s *Speaker) { s.Shutdown(context.Background(), time.Hour) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{ASN: 64497, RouterID: netip.MustParseAddr("192.0.2.1"), GracefulRestart: time.Minute, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Announce(a, nil); err != nil {
				t.Fatal(err)
			}
			tt.end(s)
			tt.end(s) // idempotent
			if st := s.Stats(); st.Withdraws != tt.withdraws {
				t.Errorf("Stats() after %s = %+v, want %d withdraws", tt.name, st, tt.withdraws)
			}
			for name, do := range map[string]func() error{
				"Start":    func() error { return s.Start(context.Background()) },
				"Resume":   func() error { return s.Resume(context.Background()) },
				"Announce": func() error { return s.Announce(a, nil) },
				"Withdraw": func() error { return s.Withdraw(a) },
			} {
				if err := do(); !errors.Is(err, ErrStopped) {
					t.Errorf("%s after %s: %v, want ErrStopped", name, tt.name, err)
				}
			}
		})
	}
}
