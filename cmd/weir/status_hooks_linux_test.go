package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// errNoNetns says the test could not create a network namespace.
var errNoNetns = errors.New("cannot create a network namespace")

// inNewNetns runs f on a thread of its own in a new network namespace,
// removed when f returns: nothing of the test process's namespace changes.
func inNewNetns(t *testing.T, f func() error) {
	t.Helper()
	err := testenv.OnThreadIn(enterNew, f)
	if errors.Is(err, errNoNetns) {
		testenv.SkipOrFail(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestStatusShowsHooks attaches the data plane to two veths, one at the
// hook under test and one at tc, and checks that "weir status" prints
// each interface's hook, read from the pinned links, with the hook asked
// for: from the configuration (-c), which names one of them and one
// where nothing runs, or from the running weir's admin status, which
// also says which one it no longer uses and where its pins are.
func TestStatusShowsHooks(t *testing.T) {
	testenv.NeedRoot(t)
	for _, c := range []struct {
		hook dataplane.Hook
		want string // what status says runs on weir-a
	}{
		{dataplane.HookTC, "tcx"},
		{dataplane.HookXDP, "xdp native, tcx behind"},
	} {
		t.Run(c.hook.String(), func(t *testing.T) {
			dir := t.TempDir()
			fsDir := filepath.Join(dir, "bpffs")
			if err := os.Mkdir(fsDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("bpf", fsDir, "bpf", 0, ""); err != nil {
				testenv.SkipOrFail(t, "cannot mount bpffs: "+err.Error())
			}
			t.Cleanup(func() { unix.Unmount(fsDir, unix.MNT_DETACH) })
			pin := filepath.Join(fsDir, "weir")
			conf := filepath.Join(dir, "weir.yaml")
			yaml := fmt.Sprintf(`version: 1
bpf: {pin_path: %q, attach: %s, interfaces: {weir-x: {attach: auto}}}
services:
  - name: vip
    kind: l4
    protocol: tcp
    vip: "192.0.2.10:80"
    interface: weir-a
    upstream: {backends: ["198.51.100.10:80"]}
`, pin, c.hook)
			if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(dir, "admin.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			fakeAdmin(t, ln, admin.Status{Version: "v9", Services: []admin.ServiceStatus{}, BPF: &admin.BPFStatus{PinPath: pin,
				Interfaces: []admin.InterfaceStatus{{Name: "weir-a", Attach: c.hook.String()}, {Name: "weir-c"}}}})

			var fromConfig, fromAdmin bytes.Buffer
			inNewNetns(t, func() error {
				for _, v := range [][2]string{{"weir-a", "weir-b"}, {"weir-c", "weir-d"}} {
					veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v[0]}, PeerName: v[1]}
					if err := netlink.LinkAdd(veth); err != nil {
						return err
					}
					if err := netlink.LinkSetUp(veth); err != nil {
						return err
					}
				}
				dp, err := dataplane.Open(dataplane.Options{PinPath: pin})
				if err != nil {
					testenv.SkipOrFail(t, "BPF data plane unavailable: "+err.Error())
					return nil
				}
				_, err = dp.AttachHook("weir-a", c.hook)
				if err == nil {
					_, err = dp.AttachHook("weir-c", dataplane.HookTC)
				}
				dp.Close()
				if err != nil {
					return err
				}
				var stderr bytes.Buffer
				// The configuration names no admin endpoint: it alone
				// says which hook is asked for.
				if code := runStatus([]string{"-c", conf}, &fromConfig, &stderr); code != 0 {
					return fmt.Errorf("weir status -c: exit %d: %s", code, &stderr)
				}
				// No -pin: the pins the running weir names.
				if code := runStatus([]string{"-admin", "unix:" + sock}, &fromAdmin, &stderr); code != 0 {
					return fmt.Errorf("weir status -admin: exit %d: %s", code, &stderr)
				}
				return nil
			})
			tests := []struct {
				name string
				out  string
				want []string
			}{
				{"configuration", fromConfig.String(), []string{
					"interface weir-a attach " + c.hook.String() + " hook " + c.want,
					"interface weir-c attach - hook tcx",
					"interface weir-x attach auto hook none",
				}},
				{"admin", fromAdmin.String(), []string{
					"interface weir-a attach " + c.hook.String() + " hook " + c.want,
					"interface weir-c attach not configured hook tcx",
				}},
			}
			for _, tt := range tests {
				t.Logf("from the %s:\n%s", tt.name, tt.out)
				// The table's columns, whatever their width.
				lines := map[string]bool{}
				for _, l := range strings.Split(tt.out, "\n") {
					lines[strings.Join(strings.Fields(l), " ")] = true
				}
				for _, want := range tt.want {
					if !lines[want] {
						t.Errorf("from the %s: no line %q", tt.name, want)
					}
				}
			}
			if strings.Contains(fromAdmin.String(), "weir-x") {
				t.Error("from the admin status: weir-x, which the running weir does not name, is listed")
			}
		})
	}
}
