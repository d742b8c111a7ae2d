// Command xdplive sends packets as XDP frames, never skbs: it runs an XDP
// program in the kernel's live-frames mode (BPF_PROG_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES) over a template frame, and each frame the
// program returns XDP_TX for leaves through the interface's ndo_xdp_xmit.
// On a veth the peer's NAPI then receives xdp_frames, as a NIC's driver
// hands them to XDP; scripts/bench-xdp uses it where Debian's
// xdp-trafficgen (xdp-tools 1.3.1) fails to load on this kernel.
//
// The program varies the frames (it may rewrite each one, as the kernel
// reuses their pages); xdplive runs it in the calling thread, so pinning
// the process (taskset) pins the sending and, on a veth, the receiving
// softirq.
//
// usage: xdplive -obj FILE -prog NAME -iface IFNAME -frame HEX [-seconds S]
package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// xdpMD is the kernel's struct xdp_md as BPF_PROG_RUN takes it in.
type xdpMD struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// runsPerCall bounds one BPF_PROG_RUN call, so that the deadline is
// checked every few hundred milliseconds at a few million frames a second.
const runsPerCall = 1 << 19

func main() {
	obj := flag.String("obj", "", "BPF object file holding the XDP program")
	prog := flag.String("prog", "", "the program's name in the object")
	iface := flag.String("iface", "", "interface whose ndo_xdp_xmit sends the frames")
	frame := flag.String("frame", "", "the template frame, in hex, from the Ethernet header on")
	seconds := flag.Uint("seconds", 5, "how long to send")
	flag.Parse()
	if *obj == "" || *prog == "" || *iface == "" || *frame == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	sent, err := run(*obj, *prog, *iface, *frame, time.Duration(*seconds)*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdplive: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d frames\n", sent)
}

// run sends frames for d and returns how many the program ran on.
func run(obj, name, iface, frameHex string, d time.Duration) (uint64, error) {
	frame, err := hex.DecodeString(frameHex)
	if err != nil {
		return 0, fmt.Errorf("decode -frame: %w", err)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return 0, fmt.Errorf("find interface %s: %w", iface, err)
	}
	spec, err := ebpf.LoadCollectionSpec(obj)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", obj, err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", obj, err)
	}
	defer coll.Close()
	p := coll.Programs[name]
	if p == nil {
		return 0, fmt.Errorf("%s has no program %s", obj, name)
	}
	// One thread sends: the kernel runs the program, and the softirq the
	// frames raise, on this thread's CPU.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sent, err := send(p, ifi.Index, frame, time.Now().Add(d), runsPerCall)
	if err != nil {
		return sent, fmt.Errorf("run %s in live-frames mode on %s: %w", name, iface, err)
	}
	return sent, nil
}

// send runs p in live-frames mode over frame, as received on the
// interface ifindex, perCall times a call until deadline, and returns how
// many runs it made.
func send(p *ebpf.Program, ifindex int, frame []byte, deadline time.Time, perCall uint32) (uint64, error) {
	opts := ebpf.RunOptions{
		Data:    frame,
		Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
		Repeat:  perCall,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
	}
	var sent uint64
	for time.Now().Before(deadline) {
		if _, err := p.Run(&opts); err != nil {
			if errors.Is(err, unix.EINVAL) {
				// What the kernel says when it lacks the mode (before
				// 5.18) or p is not an XDP program.
				return sent, fmt.Errorf("live frames (Linux 5.18 or later, XDP programs only): %w", err)
			}
			return sent, err
		}
		sent += uint64(perCall)
	}
	return sent, nil
}
