package bpffs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
)

// helperEnv makes the test binary run privateHelper instead of the tests.
const helperEnv = "WEIR_BPFFS_PRIVATE_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(privateHelper(dir))
	}
	os.Exit(m.Run())
}

// privateHelper runs in a mount namespace of its own: it prepares
// dir/weir as weir would (mounting a bpffs on dir) and prints what
// Persistent says.
func privateHelper(dir string) int {
	pin := filepath.Join(dir, "weir")
	if err := Ensure(pin); err != nil {
		fmt.Println("ensure:", err)
		return 1
	}
	err := Persistent(pin)
	switch {
	case err == nil:
		fmt.Println("persistent")
	case errors.Is(err, ErrPrivate):
		fmt.Println("private:", err)
	default:
		fmt.Println("unknown:", err)
	}
	return 0
}

// A bpffs mounted in the host's mount namespace holds its pins after the
// process that pinned them exits; one that Ensure mounts in a private
// mount namespace (unshare -m, as ip netns exec makes one) does not, and
// Persistent says so.
func TestPersistent(t *testing.T) {
	host := filepath.Join(testenv.BPFFS(t), "weir")
	if err := Ensure(host); err != nil {
		t.Fatal(err)
	}
	if err := Persistent(host); err != nil {
		t.Fatalf("Persistent(%s) on a bpffs of the host's mount namespace: %v", host, err)
	}
	if bpffsRoot := "/sys/fs/bpf"; On(bpffsRoot) {
		if err := Persistent(bpffsRoot); err != nil {
			t.Errorf("Persistent(%s): %v", bpffsRoot, err)
		}
	}
	if err := Persistent(t.TempDir()); err == nil || errors.Is(err, ErrPrivate) {
		t.Errorf("Persistent of a directory on no bpffs = %v, want an error that is not ErrPrivate", err)
	}

	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.SkipOrFail(t, "test needs unshare(1): "+err.Error())
	}
	dir := t.TempDir()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper in a private mount namespace: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "private: ") {
		t.Fatalf("Persistent on a bpffs mounted in a private mount namespace said %q, want ErrPrivate", out)
	}
	if On(dir) {
		t.Fatalf("the helper's bpffs on %s is visible on the host", dir)
	}
}

func TestHasBPFMount(t *testing.T) {
	const mountinfo = `21 26 0:20 / /proc rw,relatime - proc proc rw
50 22 0:39 / /sys/fs/bpf rw,relatime shared:7 - bpf bpf rw,mode=700
51 22 0:41 / /weird\040dir rw,relatime master:3 - tmpfs - rw
`
	for _, tc := range []struct {
		dev  string
		want bool
	}{{"0:39", true}, {"0:20", false}, {"0:41", false}, {"0:99", false}} {
		got, err := hasBPFMount(strings.NewReader(mountinfo), tc.dev)
		if err != nil || got != tc.want {
			t.Errorf("hasBPFMount(%s) = %v, %v; want %v", tc.dev, got, err, tc.want)
		}
	}
}
