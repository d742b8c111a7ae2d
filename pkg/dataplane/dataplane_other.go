//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"fmt"
	"net/netip"
	"runtime"
)

// Dataplane is unavailable here: the data plane needs Linux and a
// little-endian CPU (the program is compiled for bpfel only).
type Dataplane struct{}

func unsupported() error {
	return fmt.Errorf("%w: %s/%s has no eBPF tc data plane", ErrUnsupported, runtime.GOOS, runtime.GOARCH)
}

// Open always fails with ErrUnsupported.
func Open(Options) (*Dataplane, error) { return nil, unsupported() }

// Close does nothing.
func (d *Dataplane) Close() error { return nil }

// Attach always fails with ErrUnsupported.
func (d *Dataplane) Attach(string) error { return unsupported() }

// AttachHook always fails with ErrUnsupported.
func (d *Dataplane) AttachHook(string, Hook) (Attachment, error) { return "", unsupported() }

// Detach always fails with ErrUnsupported.
func (d *Dataplane) Detach(string) error { return unsupported() }

// SetService always fails with ErrUnsupported.
func (d *Dataplane) SetService(Service, []netip.AddrPort, []uint32) (uint32, error) {
	return 0, unsupported()
}

// DeleteService always fails with ErrUnsupported.
func (d *Dataplane) DeleteService(uint32) error { return unsupported() }

// Services always fails with ErrUnsupported.
func (d *Dataplane) Services() ([]ServiceState, error) { return nil, unsupported() }

// Interfaces always fails with ErrUnsupported.
func (d *Dataplane) Interfaces() ([]InterfaceState, error) { return nil, unsupported() }

// DetachUnused always fails with ErrUnsupported.
func (d *Dataplane) DetachUnused(func(string) bool) ([]InterfaceState, error) {
	return nil, unsupported()
}
