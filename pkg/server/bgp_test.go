package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/metrics"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tcpBackends listens on n loopback ports until the test ends.
func tcpBackends(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		out = append(out, ln.Addr().String())
	}
	return out
}

// TestAnnounceFollowsUsableBackends runs two l4 services on one VIP
// address (web needs 2 usable backends, dns 1) with a BGP speaker whose
// one peer never answers (a closed loopback port): the route is kept in
// the speaker whatever the sessions do, so the announcer's decisions show
// in the status, the metrics and the speaker's routes. Backends are
// drained and enabled through the runtime control, whose events reach the
// announcer as health changes do.
func TestAnnounceFollowsUsableBackends(t *testing.T) {
	p := freePorts(t, 3)
	web, dns := tcpBackends(t, 2), tcpBackends(t, 1)
	yaml := fmt.Sprintf(`version: 1
bgp:
  asn: 64497
  router_id: 192.0.2.1
  converge: 300ms
  peers: [{address: 127.0.0.1, asn: 64496, port: %d}]
services:
  - name: web
    kind: l4
    protocol: tcp
    vip: "127.0.0.1:%d"
    dataplane: userspace
    announce: {communities: ["64497:100", no-export], min_backends: 2}
    upstream: {backends: [%q, %q]}
  - name: dns
    kind: l4
    protocol: tcp
    vip: "127.0.0.1:%d"
    dataplane: userspace
    announce: {communities: ["64497:200"]}
    upstream: {backends: [%q]}
`, p[0], p[1], web[0], web[1], p[2], dns[0])
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	var logs syncBuffer
	m := metrics.New(metrics.Build{Version: "test"})
	srv, err := NewWith(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the server was not ready within 10s")
	}

	steps := []struct {
		name      string
		change    func() error
		announced bool
		services  string
		counts    [2]float64 // announcements, withdrawals
	}{
		{"both services qualify", func() error { return nil }, true, "web 2/2, dns 1/1", [2]float64{1, 0}},
		{"web below its minimum, dns still qualifies", func() error { return srv.SetEnabled("web", web[0], false) }, true, "web 1/2, dns 1/1", [2]float64{1, 0}},
		{"neither qualifies", func() error { return srv.SetEnabled("dns", dns[0], false) }, false, "web 1/2, dns 0/1", [2]float64{1, 1}},
		{"dns back", func() error { return srv.SetEnabled("dns", dns[0], true) }, true, "web 1/2, dns 1/1", [2]float64{2, 1}},
	}
	for _, step := range steps {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var v admin.BGPVIPStatus
		deadline := time.Now().Add(2 * time.Second)
		for {
			st := srv.Status().BGP
			if st == nil || len(st.VIPs) != 1 {
				t.Fatalf("%s: status BGP = %+v, want one vip", step.name, st)
			}
			v = st.VIPs[0]
			if (v.Announced == step.announced && v.Services == step.services) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if v.VIP != "127.0.0.1" || v.Announced != step.announced || v.Services != step.services {
			t.Fatalf("%s: vip status %+v, want announced %v, services %q", step.name, v, step.announced, step.services)
		}
		if got, want := strings.Join(v.Communities, " "), "64497:100 64497:200 no-export"; got != want {
			t.Errorf("%s: communities %q, want %q (the union, in numeric order)", step.name, got, want)
		}
		routes := srv.bgp.speaker.Announced()
		if step.announced != (len(routes) == 1 && routes[0].Prefix.String() == "127.0.0.1/32") {
			t.Errorf("%s: speaker routes %v, want announced %v", step.name, routes, step.announced)
		}
		got := [2]float64{bgpMetric(t, m, "weir_bgp_announcements_total", "vip", "127.0.0.1"), bgpMetric(t, m, "weir_bgp_withdrawals_total", "vip", "127.0.0.1")}
		if got != step.counts {
			t.Errorf("%s: announcements, withdrawals = %v, want %v", step.name, got, step.counts)
		}
		want := 0.0
		if step.announced {
			want = 1
		}
		if g := bgpMetric(t, m, "weir_bgp_vip_announced", "vip", "127.0.0.1"); g != want {
			t.Errorf("%s: weir_bgp_vip_announced = %v, want %v", step.name, g, want)
		}
	}
	peers := srv.Status().BGP.Peers
	if len(peers) != 1 || peers[0].Address != "127.0.0.1" || peers[0].ASN != 64496 || peers[0].State == "established" {
		t.Errorf("peers %+v, want 127.0.0.1 AS 64496 not established", peers)
	}
	if up := bgpMetric(t, m, "weir_bgp_peer_up", "peer", "127.0.0.1"); up != 0 {
		t.Errorf("weir_bgp_peer_up = %v, want 0", up)
	}

	start := time.Now()
	stop()
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("stopped in %v, before the converge time of 300ms", took)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="vip announced by BGP" vip=127.0.0.1 services="web 2/2, dns 1/1"`,
		`msg="vip withdrawn from BGP: too few usable backends" vip=127.0.0.1 services="web 1/2, dns 0/1"`,
		`msg="bgp withdraw" prefix=127.0.0.1/32`,
		`msg="stopping: every vip was withdrawn from BGP and the routers given converge time; stopping the services" vips=[127.0.0.1] converge=300ms`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// bgpMetric returns the value of the series of family name whose label
// is value, failing the test when there is none.
func bgpMetric(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if s.GetCounter() != nil {
						return s.GetCounter().GetValue()
					}
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// TestResumeAndReleaseBGP runs the BGP side of an upgrade on one server,
// as the new process (ResumeBGP) and then as the old one (ReleaseBGP),
// with one peer that never answers. With graceful restart the speaker
// starts only once the server is ready and the predecessor has let go,
// and a release withdraws nothing; without, both change nothing: the
// VIP is announced at Ready and withdrawn by the graceful stop.
func TestResumeAndReleaseBGP(t *testing.T) {
	tests := []struct {
		name     string
		restart  string
		resumes  bool
		released bool
	}{
		{"graceful restart", "graceful_restart: 30s", true, true},
		{"no graceful restart", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := freePorts(t, 2)
			backends := tcpBackends(t, 1)
			yaml := fmt.Sprintf(`version: 1
bgp:
  asn: 64497
  router_id: 192.0.2.1
  converge: 100ms
  %s
  peers: [{address: 127.0.0.1, asn: 64496, port: %d}]
services:
  - name: web
    kind: l4
    protocol: tcp
    vip: "127.0.0.1:%d"
    dataplane: userspace
    announce: {}
    upstream: {backends: [%q]}
`, tt.restart, p[0], p[1], backends[0])
			cfg, err := config.Parse("test.yaml", []byte(yaml))
			if err != nil {
				t.Fatalf("config:\n%v", err)
			}
			var logs syncBuffer
			m := metrics.New(metrics.Build{Version: "test"})
			srv, err := NewWith(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Listen(); err != nil {
				t.Fatal(err)
			}
			handedOver := make(chan struct{})
			srv.ResumeBGP(handedOver)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			select {
			case <-srv.Ready():
			case <-time.After(10 * time.Second):
				t.Fatal("the server was not ready within 10s")
			}
			announced := func() bool {
				st := srv.Status().BGP
				return len(st.VIPs) == 1 && st.VIPs[0].Announced && len(srv.bgp.speaker.Announced()) == 1
			}
			waitFor := func(what string, cond func() bool) {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for !cond() {
					if time.Now().After(deadline) {
						t.Fatalf("not within 5s: %s; log:\n%s", what, logs.String())
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if tt.resumes {
				// The announcer waits for the hand-over: nothing decided,
				// nothing started, although the server is ready. Absence
				// is watched for a bounded while, long enough for an
				// announcer that did not wait to have announced (it does
				// within milliseconds of Ready once the hand-over is in).
				for watch := time.Now().Add(300 * time.Millisecond); time.Now().Before(watch); time.Sleep(10 * time.Millisecond) {
					if announced() || strings.Contains(logs.String(), "resumed") {
						t.Fatalf("the VIP was announced or the sessions resumed before the predecessor let go:\n%s", logs.String())
					}
				}
				close(handedOver)
				waitFor("the sessions resumed", func() bool { return strings.Contains(logs.String(), "BGP sessions resumed from the previous weir") })
			}
			waitFor("the VIP announced", announced)

			if got := srv.ReleaseBGP(); got != tt.released {
				t.Errorf("ReleaseBGP() = %v, want %v", got, tt.released)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			done <- nil // for the cleanup
			wantWithdrawals := 1.0
			if tt.released {
				wantWithdrawals = 0
			}
			if got := bgpMetric(t, m, "weir_bgp_withdrawals_total", "vip", "127.0.0.1"); got != wantWithdrawals {
				t.Errorf("withdrawals = %v, want %v; log:\n%s", got, wantWithdrawals, logs.String())
			}
			out := logs.String()
			if handed := strings.Contains(out, "handing over: BGP sessions closed for a graceful restart"); handed != tt.released {
				t.Errorf("hand-over logged = %v, want %v:\n%s", handed, tt.released, out)
			}
			if stopped := strings.Contains(out, "stopping: every vip was withdrawn"); stopped == tt.released {
				t.Errorf("graceful stop's withdrawal logged = %v, want %v:\n%s", stopped, !tt.released, out)
			}
		})
	}
}
