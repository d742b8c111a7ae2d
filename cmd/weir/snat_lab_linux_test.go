package main

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-lb/weir/internal/lab"
	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// TestLabSNATDedicatedAddress runs weir on the BPF data plane in the lab
// with a dedicated SNAT address per family — one the balancer does not
// have, which the backends reach through their default route to it — and
// a port range inside the kernel's ephemeral ports, which a dedicated
// address may use. Backend b1 answers with the peer it sees: the SNAT
// address and a port of the configured range, for IPv4 and IPv6; and the
// answers getting back to the client show the replies were translated.
// It runs at both hooks.
func TestLabSNATDedicatedAddress(t *testing.T) {
	for _, attach := range labAttaches {
		t.Run(attach, func(t *testing.T) { testLabSNATDedicatedAddress(t, attach) })
	}
}

func testLabSNATDedicatedAddress(t *testing.T, attach string) {
	testenv.NeedRoot(t)
	l := lab.UpFor(t, attach)
	snat4 := netip.MustParseAddr("192.0.2.250")
	snat6 := netip.MustParseAddr("2001:db8:ffff::1")
	ports := dataplane.PortRange{First: 40000, Last: 40999} // inside 32768-60999
	for _, a := range []netip.Addr{lab.BackendAddr4(0), lab.BackendAddr6(0)} {
		ln, err := l.Listen(lab.B1, "tcp", netip.AddrPortFrom(a, 8080).String())
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.RemoteAddr)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "weir.yaml")
	yaml := fmt.Sprintf(`version: 1
pid_file: %s
upgrade_sock: %s
bpf:
  pin_path: %s
  attach: %s
  snat: {ports: "%s"}
services:
  - {name: web4, kind: l4, protocol: tcp, vip: "%s", interface: cli, dataplane: bpf,
     snat: {address: %s}, upstream: {backends: ["%s"]}}
  - {name: web6, kind: l4, protocol: tcp, vip: "%s", interface: cli, dataplane: bpf,
     snat: {address: "%s"}, upstream: {backends: ["%s"]}}
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), l.PinPath(), attach, ports,
		netip.AddrPortFrom(lab.VIP4, 80), snat4, netip.AddrPortFrom(lab.BackendAddr4(0), 8080),
		netip.AddrPortFrom(lab.VIP6, 80), snat6, netip.AddrPortFrom(lab.BackendAddr6(0), 8080))
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	log := logFile(t)
	weir := startLabWeir(t, l, conf, log)
	for _, tc := range []struct {
		vip  string
		snat netip.Addr
	}{{labVIP4, snat4}, {labVIP6, snat6}} {
		waitVIP(t, l, weir, tc.vip, log)
		for range 20 {
			body, err := labGet(l, tc.vip)
			if err != nil {
				t.Fatalf("GET through %s: %v\n%s", tc.vip, err, log)
			}
			peer, err := netip.ParseAddrPort(body)
			if err != nil || peer.Addr() != tc.snat || !ports.Contains(peer.Port()) {
				t.Fatalf("through %s the backend saw %q, want %s with a port in %s", tc.vip, body, tc.snat, ports)
			}
		}
	}
}
