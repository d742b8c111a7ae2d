//go:build !linux

package lab

import (
	"context"
	"net"
	"os/exec"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
)

// Lab is a running lab; only Linux has network namespaces.
type Lab struct{}

// Up skips (or fails, in CI): the lab needs Linux network namespaces.
func Up(t testing.TB) *Lab {
	t.Helper()
	testenv.SkipOrFail(t, "the lab needs Linux network namespaces")
	return nil
}

// UpFor skips (or fails, in CI), as Up does.
func UpFor(t testing.TB, _ string) *Lab { return Up(t) }

// UpCluster skips (or fails, in CI), as Up does.
func UpCluster(t testing.TB, _ int) *Lab { return Up(t) }

// Nodes is the cluster lab's node count.
func (l *Lab) Nodes() int { return 0 }

// NodePinPath is node k's bpffs directory.
func (l *Lab) NodePinPath(int) string { return "" }

// Birdc runs a command of the cluster lab's BIRD.
func (l *Lab) Birdc(...string) (string, error) { return "", errUnsupported }

// BirdLog is the path of the cluster lab's BIRD log.
func (l *Lab) BirdLog() string { return "" }

// Attach is the hook the lab was built for.
func (l *Lab) Attach() string { return "" }

// BackendInterfaces are the balancer's interfaces towards the backends.
func (l *Lab) BackendInterfaces() []string { return nil }

// Name is the lab's name.
func (l *Lab) Name() string { return "" }

// NS is the name of role's namespace.
func (l *Lab) NS(role string) string { return "" }

// PinPath is the lab's bpffs directory.
func (l *Lab) PinPath() string { return "" }

// Do is unsupported.
func (l *Lab) Do(string, func() error) error { return errUnsupported }

// Listen is unsupported.
func (l *Lab) Listen(string, string, string) (net.Listener, error) { return nil, errUnsupported }

// ListenPacket is unsupported.
func (l *Lab) ListenPacket(string, string, string) (net.PacketConn, error) {
	return nil, errUnsupported
}

// Dial is unsupported.
func (l *Lab) Dial(context.Context, string, string, string) (net.Conn, error) {
	return nil, errUnsupported
}

// Command is unsupported: it returns a command that fails.
func (l *Lab) Command(string, string, ...string) *exec.Cmd { return exec.Command("false") }

// Exec is unsupported.
func (l *Lab) Exec(string, string, ...string) (string, error) { return "", errUnsupported }
