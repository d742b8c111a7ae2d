package main

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/dataplane"
	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/sys/unix"
)

// TestStatusReadsThePinnedMaps publishes a service into a private bpffs
// and checks that "weir status" prints it from the maps alone.
func TestStatusReadsThePinnedMaps(t *testing.T) {
	testenv.NeedRoot(t)
	fsDir := t.TempDir()
	if err := unix.Mount("bpf", fsDir, "bpf", 0, ""); err != nil {
		testenv.SkipOrFail(t, "cannot mount bpffs: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(fsDir, unix.MNT_DETACH) })
	pin := filepath.Join(fsDir, "weir")

	var out, errOut bytes.Buffer
	if code := run([]string{"status", "-pin", pin}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "no BPF data plane") {
		t.Fatalf("status before any map: exit %d, %q %q", code, out.String(), errOut.String())
	}

	// Default sizes, as weir itself opens them: status reads maps of
	// those sizes.
	dp, err := dataplane.Open(dataplane.Options{PinPath: pin})
	if err != nil {
		testenv.SkipOrFail(t, "BPF data plane unavailable: "+err.Error())
	}
	svc := dataplane.Service{ID: 1, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: 6, SNAT: netip.MustParseAddr("203.0.113.1"),
		SNATPorts: dataplane.PortRange{First: 62000, Last: 62999}}
	backends := []netip.AddrPort{netip.MustParseAddrPort("203.0.113.11:80"), netip.MustParseAddrPort("203.0.113.12:80")}
	table, err := lb.MaglevTable([]lb.Backend{lb.MustBackend(backends[0].String(), 1), lb.MustBackend(backends[1].String(), 1)}, lb.DefaultMaglevTableSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.SetService(svc, backends, table); err != nil {
		t.Fatal(err)
	}
	dsr := dataplane.Service{ID: 2, VIP: netip.MustParseAddrPort("192.0.2.20:80"), Proto: 6, SNAT: netip.MustParseAddr("203.0.113.1"),
		Forwarding: dataplane.ForwardingDSRIPIP}
	if _, err := dp.SetService(dsr, backends, table); err != nil {
		t.Fatal(err)
	}
	gue := dataplane.Service{ID: 3, VIP: netip.MustParseAddrPort("192.0.2.30:80"), Proto: 6, SNAT: netip.MustParseAddr("203.0.113.1"),
		Forwarding: dataplane.ForwardingDSRGUE}
	if _, err := dp.SetService(gue, backends, table); err != nil {
		t.Fatal(err)
	}
	dp.Close()

	out.Reset()
	if code := run([]string{"status", "-pin", pin}, &out, &errOut); code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"tcp 192.0.2.10:80", "backends 2", "203.0.113.11:80", "203.0.113.12:80", "snat 203.0.113.1 ports 62000-62999",
		"tcp 192.0.2.20:80", "dsr ipip from 203.0.113.1", "dsr_too_big=0",
		"tcp 192.0.2.30:80", "dsr gue from 203.0.113.1 to port 6080"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}
