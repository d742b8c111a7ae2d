package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
)

// twoVIPConfig is an l4 configuration of one VIP per interface of
// ifnames, each on the BPF data plane at attach, all to one backend on
// loopback.
func twoVIPConfig(t *testing.T, pin, attach string, port, backend int, ifnames ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nbpf: {pin_path: %q, attach: %s}\nservices:\n", pin, attach)
	for i, ifname := range ifnames {
		fmt.Fprintf(&b, `  - name: vip-%s
    kind: l4
    protocol: tcp
    vip: "192.0.2.%d:%d"
    dataplane: bpf
    interface: %s
    upstream:
      backends: ["127.0.0.1:%d"]
`, ifname, 10+i, port, ifname, backend)
	}
	cfg, err := config.Parse("test.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg
}

// startBPFServer serves cfg until ready and returns the server and what
// stops it, as a process of its own would be stopped.
func startBPFServer(t *testing.T, cfg *config.Config, log *slog.Logger) (*Server, func()) {
	t.Helper()
	srv, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Serve ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("the server was not ready within 10s")
	}
	return srv, stop
}

// TestBPFDetachesDroppedInterface starts weir on two interfaces, then
// upgrades (or reloads: the same hand-over) into a configuration that has
// only one, at each hook: once the new server has taken over and the old
// one stopped, DetachUnused leaves no hook of weir's on the dropped
// interface, logs it, and keeps the one still in use as it was. Before,
// the status shows the dropped interface as hooked but not configured;
// after, it is gone from it.
func TestBPFDetachesDroppedInterface(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	for _, c := range []struct {
		attach       string
		veth, lo     string // the hooks of the veths and of lo, as hookOf says
		hook, loHook string // the status's hook of the veths and of lo
		tc           string // the status's tc behind XDP
		logged       string // the hook the detach logs
	}{
		{"tc", "tcx", "tcx", "tcx", "tcx", "", "tcx"},
		{"xdp", "tcx+xdp native", "tcx+xdp generic", "xdp native", "xdp generic", "tcx", `"xdp native, tcx behind"`},
	} {
		t.Run(c.attach, func(t *testing.T) {
			for _, v := range [][2]string{{"weir-a", "weir-b"}, {"weir-c", "weir-d"}} {
				veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v[0]}, PeerName: v[1]}
				if err := netlink.LinkAdd(veth); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { netlink.LinkDel(veth) })
				if err := netlink.LinkSetUp(veth); err != nil {
					t.Fatal(err)
				}
			}
			p := freePorts(t, 2)
			pin := testenv.BPFFS(t) + "/weir"
			var oldLog, newLog testenv.Buffer
			old, stopOld := startBPFServer(t, twoVIPConfig(t, pin, c.attach, p[0], p[1], "weir-a", "weir-c"),
				slog.New(slog.NewTextHandler(&oldLog, nil)))
			if err := old.DetachUnused(); err != nil {
				t.Fatalf("old DetachUnused: %v", err)
			}
			for _, ifname := range []string{"weir-a", "weir-c"} {
				if got := hookOf(t, ifname); got != c.veth {
					t.Fatalf("old weir: %s runs %s, want %s", ifname, got, c.veth)
				}
			}
			want := []admin.InterfaceStatus{
				{Name: "lo", Attach: c.attach, Hook: c.loHook, TC: c.tc},
				{Name: "weir-a", Attach: c.attach, Hook: c.hook, TC: c.tc},
				{Name: "weir-c", Attach: c.attach, Hook: c.hook, TC: c.tc},
			}
			checkBPFStatus(t, "old weir", old, pin, want)

			// The new weir starts while the old one serves, on the same pins.
			srv, stop := startBPFServer(t, twoVIPConfig(t, pin, c.attach, p[0], p[1], "weir-a"),
				slog.New(slog.NewTextHandler(&newLog, nil)))
			defer stop()
			if got := hookOf(t, "weir-c"); got != c.veth {
				t.Errorf("before the hand-over settles: weir-c runs %s, want %s still", got, c.veth)
			}
			want[2].Attach = "" // hooked, no longer configured
			checkBPFStatus(t, "new weir before DetachUnused", srv, pin, want)
			stopOld()
			if err := srv.DetachUnused(); err != nil {
				t.Fatalf("DetachUnused: %v", err)
			}
			if got := hookOf(t, "weir-c"); got != "none" {
				t.Errorf("weir-c, dropped from the configuration, runs %s; want none", got)
			}
			if got := hookOf(t, "weir-a"); got != c.veth {
				t.Errorf("weir-a, still configured, runs %s; want %s", got, c.veth)
			}
			if got := hookOf(t, "lo"); got != c.lo {
				t.Errorf("lo, towards the backend, runs %s; want %s", got, c.lo)
			}
			checkBPFStatus(t, "new weir after DetachUnused", srv, pin, want[:2])
			detached := `msg="BPF data plane detached from an interface the configuration no longer uses" interface=weir-c hook=` + c.logged
			if !strings.Contains(newLog.String(), detached) {
				t.Errorf("the new weir's log does not say it detached weir-c:\n%s", newLog.String())
			}
			if strings.Contains(oldLog.String(), "detached") {
				t.Errorf("the old weir detached something:\n%s", oldLog.String())
			}
		})
	}
}

// checkBPFStatus checks the BPF interfaces srv's status reports.
func checkBPFStatus(t *testing.T, when string, srv *Server, pin string, want []admin.InterfaceStatus) {
	t.Helper()
	st := srv.Status().BPF
	if st == nil {
		t.Fatalf("%s: the status has no bpf", when)
	}
	if st.PinPath != pin || st.Error != "" || !slices.Equal(st.Interfaces, want) {
		t.Errorf("%s: status bpf = %+v; want pin_path %s, interfaces %+v", when, *st, pin, want)
	}
}
