package testenv

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Decapsulator is a tc program that removes the outer header of
// IPv4-in-IPv4 and IPv6-in-IPv6 packets, what the kernel's tunnel devices
// do on receive. Written here in assembly, independently of bpf/dsr.h, so
// that it checks the encapsulation rather than mirrors it. Tests of direct
// server return use it in the place of those devices on kernels built
// without them (CONFIG_NET_IPIP, CONFIG_IPV6_TUNNEL); it is closed when t
// ends.
func Decapsulator(t testing.TB) *ebpf.Program {
	t.Helper()
	const (
		skbProtocol = 16     // offsetof(struct __sk_buff, protocol)
		ethIPv4     = 0x0008 // htons(ETH_P_IP) as the little-endian load reads it
		ethIPv6     = 0xdd86 // htons(ETH_P_IPV6)
	)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the decapsulator's constants assume a little-endian machine")
	}
	// strip checks the outer header's protocol field at protoOff, moves the
	// inner header (hdrLen bytes) over the outer one and removes hdrLen
	// bytes after it: the moved copy's old place. Whether the kernel
	// removes the room right after the MAC header or after the first IP
	// header, what is left is the inner packet.
	strip := func(label string, protoOff, proto, hdrLen int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.R6).WithSymbol(label),
			asm.Mov.Imm(asm.R2, protoOff),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -8),
			asm.Mov.Imm(asm.R4, 1),
			asm.FnSkbLoadBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
			asm.LoadMem(asm.R2, asm.R10, -8, asm.Byte),
			asm.JNE.Imm(asm.R2, proto, "pass"),
			// Load the inner header into the stack at -48.
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, 14+hdrLen),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -48),
			asm.Mov.Imm(asm.R4, hdrLen),
			asm.FnSkbLoadBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
			// Store it over the outer header (BPF_F_RECOMPUTE_CSUM).
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, 14),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -48),
			asm.Mov.Imm(asm.R4, hdrLen),
			asm.Mov.Imm(asm.R5, 1),
			asm.FnSkbStoreBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, -hdrLen),
			asm.Mov.Imm(asm.R3, 0), // BPF_ADJ_ROOM_MAC
			asm.Mov.Imm(asm.R4, 0),
			asm.FnSkbAdjustRoom.Call(),
			asm.Ja.Label("pass"),
		}
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R2, ethIPv4, "v4"),
		asm.JEq.Imm(asm.R2, ethIPv6, "v6"),
		asm.Ja.Label("pass"),
	}
	insns = append(insns, strip("v4", 14+9, 4, 20)...)
	insns = append(insns, strip("v6", 14+6, 41, 40)...)
	insns = append(insns, asm.Mov.Imm(asm.R0, 0 /* TC_ACT_OK */).WithSymbol("pass"), asm.Return())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "test_decap", Type: ebpf.SchedCLS, License: "Dual MIT/GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load the decapsulator: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// AttachDecapsulator attaches Decapsulator to the tcx ingress of ifname in
// the calling thread's network namespace (call it inside one), detached
// when t ends.
func AttachDecapsulator(t testing.TB, ifname string) error {
	prog := Decapsulator(t)
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("decapsulator: %w", err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach the decapsulator to %s: %w", ifname, err)
	}
	t.Cleanup(func() { l.Close() })
	return nil
}
