package server

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// inNetnsEnv marks the re-executed test process that runs in a network
// namespace of its own.
const inNetnsEnv = "WEIR_TEST_SERVER_IN_NETNS"

// inOwnNetns runs the calling test in a network namespace of its own: it
// re-executes the test binary under unshare --net for this test alone and
// reports false (the outer run is done: the test passed or failed by the
// inner one), or, in the re-executed process, brings lo up and reports
// true: go on. A test needing root skips or fails without it.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	testenv.NeedRoot(t)
	if os.Getenv(inNetnsEnv) == "1" {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Fatalf("bring lo up: %v", err)
		}
		return true
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testenv.SkipOrFail(t, "test needs unshare(1): "+err.Error())
	}
	cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	return false
}

// TestL4RuntimeControlReachesTheBPFMaps drains, re-enables, reweights,
// adds and removes backends of an l4 service on the BPF data plane, and
// reads each change back from the pinned maps, as weir status does,
// within 100 ms. It runs in a network namespace of its own (the test
// binary re-executed under unshare --net), so that attaching to lo
// changes nothing of the host's.
func TestL4RuntimeControlReachesTheBPFMaps(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	pin := testenv.BPFFS(t) + "/weir"
	p := freePorts(t, 4)
	vip := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", p[0]))
	a, b, c := fmt.Sprintf("127.0.0.1:%d", p[1]), fmt.Sprintf("127.0.0.1:%d", p[2]), fmt.Sprintf("127.0.0.1:%d", p[3])
	yaml := fmt.Sprintf(`
version: 1
bpf: {pin_path: %q}
services:
  - name: vip
    kind: l4
    protocol: tcp
    vip: %q
    dataplane: bpf
    interface: lo
    upstream:
      backends: [%q, %q]
`, pin, vip, a, b)
	srv := serving(t, yaml, nil, nil)
	dp, err := dataplane.Open(dataplane.Options{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })

	// pinned reads the service's live backends and generation back.
	pinned := func() ([]string, uint32) {
		services, err := dp.Services()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range services {
			if s.VIP == vip {
				var out []string
				for _, be := range s.Backends {
					out = append(out, be.String())
				}
				slices.Sort(out)
				return out, s.Generation
			}
		}
		return nil, 0
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	if got, _ := pinned(); !slices.Equal(got, sorted(a, b)) {
		t.Fatalf("pinned backends at start: %v, want %v", got, sorted(a, b))
	}
	steps := []struct {
		name   string
		change func() error
		want   []string
	}{
		{"drain", func() error { return srv.SetEnabled("vip", a, false) }, sorted(b)},
		{"enable", func() error { return srv.SetEnabled("vip", a, true) }, sorted(a, b)},
		{"weight", func() error { return srv.SetWeight("vip", a, 5) }, sorted(a, b)},
		{"add", func() error { return srv.AddBackend("vip", c, 1) }, sorted(a, b, c)},
		{"remove", func() error { return srv.RemoveBackend("vip", b) }, sorted(a, c)},
	}
	for _, st := range steps {
		_, genBefore := pinned()
		start := time.Now()
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		returned := time.Since(start)
		var got []string
		var gen uint32
		for polls := 0; ; polls++ {
			got, gen = pinned()
			if slices.Equal(got, st.want) && gen != genBefore {
				break
			}
			if time.Since(start) > changeDeadline || polls == 10_000 {
				t.Fatalf("%s: the pinned maps hold %v (generation %d, was %d) %v after the change, want %v in a new generation",
					st.name, got, gen, genBefore, time.Since(start), st.want)
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("%s: the call returned after %v; the pinned maps held generation %d with %v after %v",
			st.name, returned, gen, got, time.Since(start))
	}
	vipStatus := serviceNamed(t, srv.Status(), "vip")
	if vipStatus.DataPlane != "bpf" || vipStatus.Generation == 0 || vipStatus.L4 == nil {
		t.Errorf("status of the l4 service: %+v", vipStatus)
	}
	if stats := srv.L4Stats(); len(stats) != 1 || stats[0].DataPlane != "bpf" || len(stats[0].Backends) != 2 {
		t.Errorf("L4Stats: %+v", stats)
	}
}
