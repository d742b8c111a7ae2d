package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/internal/testenv"
)

// XDP verdicts, from linux/bpf.h.
const (
	xdpDrop = 1
	xdpTX   = 3
)

// TestSend runs a generator that returns each verdict on one end of a veth
// pair and counts, with an XDP program on the other end, the frames that
// arrive there.
func TestSend(t *testing.T) {
	testenv.NeedRoot(t)
	cases := []struct {
		name    string
		verdict int32
		arrive  bool
	}{
		{"XDP_TX sends frames to the peer", xdpTX, true},
		{"XDP_DROP sends nothing", xdpDrop, false},
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, testEtherType >> 8, testEtherType & 0xff})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gen := newProgram(t, asm.Instructions{asm.Mov.Imm(asm.R0, tc.verdict), asm.Return()})
			counter, count := newCounter(t)
			var sent uint64
			err := inNetns(newNetns(t), func() error {
				a, err := vethPair("xa", "xb", counter)
				if err != nil {
					return err
				}
				sent, err = send(gen, a.Attrs().Index, frame, time.Now().Add(100*time.Millisecond), 1024)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if sent == 0 {
				t.Fatal("send ran the program no time")
			}
			if !tc.arrive {
				if n := count(); n != 0 {
					t.Fatalf("%d frames arrived, want none", n)
				}
				return
			}
			// The peer's NAPI runs in the softirq that sending raised,
			// normally before send returns, or else soon after in ksoftirqd.
			var n uint64
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if n = count(); n > 0 {
					break
				}
			}
			if n == 0 || n > sent {
				t.Fatalf("%d frames arrived of %d sent, want 1 to %d", n, sent, sent)
			}
		})
	}
}

func newProgram(t *testing.T, insns asm.Instructions) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("cannot load an XDP program: %v", err))
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testEtherType marks the test's frames (IEEE's local experimental
// EtherType), apart from what the kernel sends when a veth comes up.
const testEtherType = 0x88b5

// newCounter returns an XDP program that counts the test's frames and
// drops every frame, and a function that reads the count.
func newCounter(t *testing.T) (*ebpf.Program, func() uint64) {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("cannot create a BPF map: %v", err))
	}
	t.Cleanup(func() { m.Close() })
	p := newProgram(t, asm.Instructions{
		// Only frames of testEtherType (big-endian in the frame, read as
		// a little-endian u16).
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "out"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, int32(testEtherType>>8|testEtherType&0xff<<8), "out"),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("out"),
		asm.Return(),
	})
	return p, func() uint64 {
		var n uint64
		if err := m.Lookup(uint32(0), &n); err != nil {
			t.Fatalf("read the count: %v", err)
		}
		return n
	}
}

// vethPair creates veths a and b, up, with rx on b as b's XDP program,
// and returns a.
func vethPair(a, b string, rx *ebpf.Program) (netlink.Link, error) {
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		return nil, fmt.Errorf("add veth %s: %w", a, err)
	}
	la, err := netlink.LinkByName(a)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", a, err)
	}
	lb, err := netlink.LinkByName(b)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", b, err)
	}
	if err := netlink.LinkSetXdpFdWithFlags(lb, rx.FD(), 1<<2 /* XDP_FLAGS_DRV_MODE */); err != nil {
		return nil, fmt.Errorf("attach XDP to %s: %w", b, err)
	}
	for _, l := range []netlink.Link{la, lb} {
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
	}
	return la, nil
}

// newNetns creates a network namespace, closed when t ends.
func newNetns(t testing.TB) netns.NsHandle { return testenv.Netns(t) }

// inNetns runs f on a thread inside ns.
func inNetns(ns netns.NsHandle, f func() error) error {
	return testenv.InNetns(ns, f)
}
