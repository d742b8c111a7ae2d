package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/config"
)

// hookOf says what runs on ifname's ingress: "tcx", "tcx+xdp native", "xdp
// generic", joined by "+" when more than one does, or "none".
func hookOf(t *testing.T, ifname string) string {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	var hooks []string
	res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Programs) > 0 {
		hooks = append(hooks, "tcx")
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		if x.AttachMode == nl.XDP_ATTACHED_SKB {
			hooks = append(hooks, "xdp generic")
		} else {
			hooks = append(hooks, "xdp native")
		}
	}
	if len(hooks) == 0 {
		return "none"
	}
	return strings.Join(hooks, "+")
}

// TestBPFAttachFollowsConfig starts weir on the BPF data plane again and
// again on the same pins, as reloads do, with the hook changed in between:
// the service's interface (a veth, which runs XDP in its driver) and the
// interface towards the backend (lo, which does not) each end up on the
// configured hook, XDP with tc behind it, and nothing else.
func TestBPFAttachFollowsConfig(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "weir-a"}, PeerName: "weir-b"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 2)
	pin := testenv.BPFFS(t) + "/weir"
	steps := []struct {
		bpf       string // keys of the bpf mapping besides pin_path
		veth, low string // the hook of weir-a and of lo
	}{
		{"", "tcx", "tcx"},
		{"attach: xdp", "tcx+xdp native", "tcx+xdp generic"},
		{"attach: auto", "tcx+xdp native", "tcx"},
		{"attach: tc", "tcx", "tcx"},
		{"{attach: tc, interfaces: {weir-a: {attach: xdp}}}", "tcx+xdp native", "tcx"},
		{"{attach: xdp, interfaces: {lo: {attach: tc}}}", "tcx+xdp native", "tcx"},
		{"{interfaces: {lo: {attach: xdp}}}", "tcx", "tcx+xdp generic"},
	}
	for i, st := range steps {
		keys := st.bpf
		if len(keys) > 0 && keys[0] == '{' {
			keys = keys[1 : len(keys)-1]
		}
		if keys != "" {
			keys = ", " + keys
		}
		yaml := fmt.Sprintf(`
version: 1
bpf: {pin_path: %q%s}
services:
  - name: vip
    kind: l4
    protocol: tcp
    vip: "192.0.2.10:%d"
    dataplane: bpf
    interface: weir-a
    upstream:
      backends: ["127.0.0.1:%d"]
`, pin, keys, p[0], p[1])
		cfg, err := config.Parse("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatalf("step %d: config:\n%v", i, err)
		}
		srv, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Listen(); err != nil {
			t.Fatalf("step %d (bpf %s): Listen: %v", i, st.bpf, err)
		}
		serveUntilReady(t, srv)
		if got := hookOf(t, "weir-a"); got != st.veth {
			t.Errorf("step %d (bpf %s): weir-a runs %s, want %s", i, st.bpf, got, st.veth)
		}
		if got := hookOf(t, "lo"); got != st.low {
			t.Errorf("step %d (bpf %s): lo runs %s, want %s", i, st.bpf, got, st.low)
		}
	}
}
