package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// TestBPFSNATPortsCheckedAtStart starts weir on the BPF data plane in a
// network namespace of its own (the test binary re-executed under unshare
// --net) whose ip_local_port_range the test sets: SNAT ports the kernel
// may also pick on an address of the namespace are refused, with both
// ranges and the ways out in the error, even with dataplane: auto (no
// fallback to userspace hides it); narrowing the kernel's range, or a
// dedicated SNAT address, lets weir start, and the ports reach the maps.
func TestBPFSNATPortsCheckedAtStart(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	const rangeSysctl = "/proc/sys/net/ipv4/ip_local_port_range"
	p := freePorts(t, 2)
	steps := []struct {
		name      string
		kernel    string // ip_local_port_range
		dataplane string
		snat      string // the service's snat mapping; "dsr", "gue": forwarding: dsr instead
		refused   string // what the error says; "" for a start
	}{
		{"the old range on the kernel's address", "32768 60999", "bpf", `{ports: "40000-59999"}`,
			"40000-59999 on the address the kernel picks towards the backends and its ip_local_port_range 32768-60999 share 40000-59999"},
		{"the old range on a local address, auto", "32768 60999", "auto", `{address: 127.0.0.1, ports: "40000-59999"}`,
			`net.ipv4.ip_local_port_range="32768 39999"`},
		{"the default range", "32768 60999", "bpf", "", ""},
		{"a dedicated address", "32768 60999", "bpf", `{address: 203.0.113.200, ports: "1024-65535"}`, ""},
		{"the kernel's range narrowed", "32768 39999", "bpf", `{ports: "40000-59999"}`, ""},
		{"the default range on a widened kernel", "1024 65535", "bpf", "", "ip_local_reserved_ports=61000-65535"},
		// Direct server return takes no ports: nothing to collide.
		{"DSR on a widened kernel", "1024 65535", "bpf", "dsr", ""},
		{"DSR in GUE on a widened kernel", "1024 65535", "bpf", "gue", ""},
	}
	for i, st := range steps {
		if err := os.WriteFile(rangeSysctl, []byte(st.kernel), 0o644); err != nil {
			t.Fatal(err)
		}
		snat, backendPort := "", p[1]
		switch st.snat {
		case "":
		case "dsr":
			snat, backendPort = "\n    forwarding: dsr\n    encap: ipip", p[0]
		case "gue":
			snat, backendPort = "\n    forwarding: dsr\n    encap: gue\n    gue_port: 5555", p[0]
		default:
			snat = "\n    snat: " + st.snat
		}
		pin := testenv.BPFFS(t) + "/weir"
		yaml := fmt.Sprintf(`
version: 1
bpf: {pin_path: %q}
services:
  - name: vip
    kind: l4
    protocol: tcp
    vip: "127.0.0.1:%d"
    dataplane: %s
    interface: lo%s
    upstream:
      backends: ["127.0.0.1:%d"]
`, pin, p[0], st.dataplane, snat, backendPort)
		cfg, err := config.Parse("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatalf("%s: config:\n%v", st.name, err)
		}
		srv, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Listen()
		if st.refused != "" {
			srv.Close()
			t.Logf("%s: refused: %v", st.name, err)
			if !errors.Is(err, dataplane.ErrSNATPortsInUse) || !strings.Contains(err.Error(), st.refused) ||
				!strings.Contains(err.Error(), "dedicated SNAT address") {
				t.Errorf("%s: Listen error %v, want ErrSNATPortsInUse saying %q and the ways out", st.name, err, st.refused)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Listen: %v", st.name, err)
		}
		serveUntilReady(t, srv)
		dp, err := dataplane.Open(dataplane.Options{PinPath: pin})
		if err != nil {
			t.Fatal(err)
		}
		services, err := dp.Services()
		dp.Close()
		want := cfg.Services[0].L4.SNAT
		if err != nil || len(services) != 1 || services[0].SNATPorts != want.Ports ||
			services[0].Forwarding.IsDSR() != (st.snat == "dsr" || st.snat == "gue") ||
			(st.snat == "gue") != (services[0].Forwarding == dataplane.ForwardingDSRGUE && services[0].GUEPort == 5555) ||
			(want.Address.IsValid() && services[0].SNAT != want.Address) {
			t.Errorf("%s (step %d): pinned services %+v, %v; want SNAT %s", st.name, i, services, err, want)
		}
	}
}
