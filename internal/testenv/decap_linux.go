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

// DefaultGUEPort is the UDP port Decapsulator and AttachDecapsulator take
// GUE on: dataplane.DefaultGUEPort, which this package cannot import.
const DefaultGUEPort = 6080

// Decapsulator is a tc program that removes the outer header of
// IPv4-in-IPv4 and IPv6-in-IPv6 packets, and the outer IP and UDP headers
// of GUE version 1 ("direct IP") packets to DefaultGUEPort, what the
// kernel's tunnel devices and fou port do on receive. See DecapsulatorOn.
func Decapsulator(t testing.TB) *ebpf.Program { return DecapsulatorOn(t, DefaultGUEPort) }

// DecapsulatorOn is Decapsulator taking GUE on UDP port guePort. Written
// here in assembly, independently of bpf/dsr.h, so that it checks the
// encapsulation rather than mirrors it: a GUE packet is decapsulated only
// if its outer protocol is UDP, its destination port guePort, and its
// payload an IP header of the outer one's version (what fou's
// gue_udp_recv checks of version 1, on a device whose tunnel takes that
// family); anything else passes as it is. Tests of direct server return
// use it in the place of those devices on kernels built without them
// (CONFIG_NET_IPIP, CONFIG_IPV6_TUNNEL, CONFIG_NET_FOU); it is closed when
// t ends.
func DecapsulatorOn(t testing.TB, guePort uint16) *ebpf.Program {
	t.Helper()
	const (
		skbProtocol = 16     // offsetof(struct __sk_buff, protocol)
		ethIPv4     = 0x0008 // htons(ETH_P_IP) as the little-endian load reads it
		ethIPv6     = 0xdd86 // htons(ETH_P_IPV6)
		udpHdr      = 8
	)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the decapsulator's constants assume a little-endian machine")
	}
	// The port as a little-endian load of its network-order bytes reads it.
	portLE := int32(guePort>>8 | guePort<<8)
	// load puts n bytes of the packet at off into the stack at fp, and
	// passes the packet on if they are not there.
	load := func(off, fp, n int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, off),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, fp),
			asm.Mov.Imm(asm.R4, n),
			asm.FnSkbLoadBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
		}
	}
	// strip checks the outer header's protocol field at protoOff (going on
	// at miss if it is not proto), runs checks, then moves the inner IP
	// header (ipLen bytes, right after the outer headers of outerLen bytes)
	// over the outer headers and removes outerLen bytes after the MAC
	// header. Whether the kernel removes them right there or after the
	// first IP header, what is left is the inner packet.
	strip := func(label, miss string, protoOff, proto, outerLen, ipLen int32, checks asm.Instructions) asm.Instructions {
		insns := load(protoOff, -8, 1)
		insns[0] = insns[0].WithSymbol(label)
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R10, -8, asm.Byte),
			asm.JNE.Imm(asm.R2, proto, miss),
		)
		insns = append(insns, checks...)
		// Load the inner header into the stack at -48.
		insns = append(insns, load(14+outerLen, -48, ipLen)...)
		return append(insns,
			// Store it over the outer header (BPF_F_RECOMPUTE_CSUM).
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, 14),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -48),
			asm.Mov.Imm(asm.R4, ipLen),
			asm.Mov.Imm(asm.R5, 1),
			asm.FnSkbStoreBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, -outerLen),
			asm.Mov.Imm(asm.R3, 0), // BPF_ADJ_ROOM_MAC
			asm.Mov.Imm(asm.R4, 0),
			asm.FnSkbAdjustRoom.Call(),
			asm.Ja.Label("pass"),
		)
	}
	// gue checks a GUE packet whose UDP header is at udpOff: destination
	// port guePort, and a payload whose first nibble is version.
	gue := func(udpOff, version int32) asm.Instructions {
		insns := load(udpOff+2, -16, 2)
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R10, -16, asm.Half),
			asm.JNE.Imm(asm.R2, portLE, "pass"),
		)
		insns = append(insns, load(udpOff+udpHdr, -8, 1)...)
		return append(insns,
			asm.LoadMem(asm.R2, asm.R10, -8, asm.Byte),
			asm.RSh.Imm(asm.R2, 4),
			asm.JNE.Imm(asm.R2, version, "pass"),
		)
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R2, ethIPv4, "v4"),
		asm.JEq.Imm(asm.R2, ethIPv6, "v6"),
		asm.Ja.Label("pass"),
	}
	insns = append(insns, strip("v4", "v4gue", 14+9, 4, 20, 20, nil)...)
	insns = append(insns, strip("v4gue", "pass", 14+9, 17, 20+udpHdr, 20, gue(14+20, 4))...)
	insns = append(insns, strip("v6", "v6gue", 14+6, 41, 40, 40, nil)...)
	insns = append(insns, strip("v6gue", "pass", 14+6, 17, 40+udpHdr, 40, gue(14+40, 6))...)
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
	return AttachDecapsulatorOn(t, ifname, DefaultGUEPort)
}

// AttachDecapsulatorOn is AttachDecapsulator with DecapsulatorOn(t, guePort).
func AttachDecapsulatorOn(t testing.TB, ifname string, guePort uint16) error {
	prog := DecapsulatorOn(t, guePort)
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
