//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/internal/testenv"
)

// dsrTopology is the end-to-end topology plus a direct link between client
// and backend, the way replies go in direct server return. The balancer
// has no route back to the client at all, so an answer the client gets
// cannot have crossed it.
//
//	client cl-0 198.51.100.2, 2001:db8:c::2 --- lb-c (lb: no route back)
//	client cl-b (no address)                --- be-c backend: routes to the client
//	backend be-0 203.0.113.11, 2001:db8:1::11 --- lb-b 203.0.113.1, 2001:db8:1::1
//	backend lo: the VIPs, set up by scripts/dsr-backend
type dsrTopology struct {
	e2eTopology
}

var (
	dsrClient4 = netip.MustParseAddr("198.51.100.2")
	dsrClient6 = netip.MustParseAddr("2001:db8:c::2")
)

func newDSRTopology(t *testing.T, fullChecksums bool) dsrTopology {
	t.Helper()
	topo := dsrTopology{newE2ETopology(t, fullChecksums)}
	var clientMAC net.HardwareAddr
	steps := []nsStep{
		{topo.backend, func() error {
			if err := addVeth("be-c", "cl-b"); err != nil {
				return err
			}
			if err := moveLink("cl-b", topo.client); err != nil {
				return err
			}
			return testenv.ConfigureLink("be-c")
		}},
		{topo.client, func() error {
			if err := testenv.ConfigureLink("cl-b"); err != nil {
				return err
			}
			var err error
			if clientMAC, err = linkMAC("cl-b"); err != nil {
				return err
			}
			// Answers come in on cl-b, from VIPs routed through cl-0.
			return errors.Join(writeSysctl("ipv4/conf/all/rp_filter", "0"), writeSysctl("ipv4/conf/cl-b/rp_filter", "0"),
				offload("cl-b", false, false))
		}},
		{topo.backend, func() error {
			// Static neighbours: the client answers neither ARP nor ND
			// on cl-b for addresses it holds on cl-0.
			for _, c := range []netip.Addr{dsrClient4, dsrClient6} {
				if err := routeVia("be-c", c); err != nil {
					return err
				}
				if err := addNeighbour("be-c", c, clientMAC); err != nil {
					return err
				}
			}
			return offload("be-c", !fullChecksums, false)
		}},
		{topo.lb, func() error {
			for _, p := range []string{"198.51.100.0/24", "2001:db8:c::/64"} {
				if out, err := exec.Command("ip", "route", "del", p, "dev", "lb-c").CombinedOutput(); err != nil {
					return fmt.Errorf("remove the route back to the client %s: %w: %s", p, err, out)
				}
			}
			return nil
		}},
	}
	setUp(t, "DSR topology", steps)
	return topo
}

func mustIndex(name string) int {
	i, _ := linkIndex(name)
	return i
}

func prefixNet(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// routeVia routes host a out of link, on-link.
func routeVia(linkName string, a netip.Addr) error {
	l, err := netlink.LinkByName(linkName)
	if err != nil {
		return err
	}
	dst := netip.PrefixFrom(a, a.BitLen())
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(dst.String()), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s via %s: %w", a, linkName, err)
	}
	return nil
}

// writeSysctl sets /proc/sys/net/key in the calling thread's namespace.
func writeSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/net/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl net.%s: %w", strings.ReplaceAll(key, "/", "."), err)
	}
	return nil
}

// dsrHelper is scripts/dsr-backend.
func dsrHelper(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../scripts/dsr-backend")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setUpDSRBackend applies scripts/dsr-backend in ns for vips, with the
// kernel's ipip and ip6tnl devices where the kernel has them. A kernel
// built without them (CONFIG_NET_IPIP, CONFIG_IPV6_TUNNEL; the development
// VM's is one) gets the helper's --decap none and, in the devices' place,
// a tc program on ifname that strips the outer header as they would. It
// returns which.
func setUpDSRBackend(t *testing.T, ns netns.NsHandle, ifname string, vips ...string) string {
	t.Helper()
	return setUpBackendFor(t, ns, ifname, ForwardingDSRIPIP, 0, vips...)
}

// setUpBackendFor is setUpDSRBackend for services forwarding fwd, on GUE
// port guePort with ForwardingDSRGUE (the kernel's fou besides the
// devices; the tc program takes GUE on that port).
func setUpBackendFor(t *testing.T, ns netns.NsHandle, ifname string, fwd Forwarding, guePort uint16, vips ...string) string {
	t.Helper()
	helper := dsrHelper(t)
	args := []string{"--encap", "ipip"}
	if fwd == ForwardingDSRGUE {
		args = []string{"--encap", "gue", "--gue-port", fmt.Sprint(guePort)}
	}
	run := func(cmd string, extra ...string) ([]byte, error) {
		var out []byte
		err := inNetns(ns, func() error {
			var err error
			out, err = exec.Command(helper, append(append(append([]string{cmd}, extra...), args...), vips...)...).CombinedOutput()
			return err
		})
		return out, err
	}
	out, err := run("up")
	if err == nil {
		t.Cleanup(func() { run("down") })
		return "the kernel's devices"
	}
	if !strings.Contains(string(out), "cannot create the") {
		t.Fatalf("scripts/dsr-backend up %s %s: %v\n%s", strings.Join(args, " "), strings.Join(vips, " "), err, out)
	}
	t.Logf("this kernel cannot decapsulate (%s); decapsulating with a tc program instead", strings.TrimSpace(string(out)))
	if out, err := run("up", "--decap", "none"); err != nil {
		t.Fatalf("scripts/dsr-backend up --decap none: %v\n%s", err, out)
	}
	if err := inNetns(ns, func() error { return testenv.AttachDecapsulatorOn(t, ifname, guePort) }); err != nil {
		t.Fatal(err)
	}
	return "a tc decapsulator"
}

// TestDSREndToEnd sends real TCP and UDP traffic, both families, from a
// client to DSR services: the backend, set up by scripts/dsr-backend, sees
// the client's own address, and its answers reach the client directly.
// XDP runs with full checksums only, as in TestEndToEnd.
func TestDSREndToEnd(t *testing.T) {
	needBPF(t)
	forEachHookAndChecksum(t, testDSREndToEnd)
}

func testDSREndToEnd(t *testing.T, hook Hook, fullChecksums bool) {
	topo := newDSRTopology(t, fullChecksums)
	readyForXDP(t, hook, topo.client, topo.backend)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	opts.MaxServices = 8 // four exchanges and two uploads
	d := openAt(t, opts)
	attachIn(t, d, hook, topo.lb, "lb-c", "lb-b")
	services := []struct {
		svc     Service
		backend netip.Addr
		client  netip.Addr
	}{
		{Service{ID: 0, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP}, netip.MustParseAddr("203.0.113.11"), dsrClient4},
		{Service{ID: 1, VIP: netip.MustParseAddrPort("192.0.2.10:53"), Proto: ProtoUDP}, netip.MustParseAddr("203.0.113.11"), dsrClient4},
		{Service{ID: 2, VIP: netip.MustParseAddrPort("[2001:db8::10]:80"), Proto: ProtoTCP}, netip.MustParseAddr("2001:db8:1::11"), dsrClient6},
		{Service{ID: 3, VIP: netip.MustParseAddrPort("[2001:db8::10]:53"), Proto: ProtoUDP}, netip.MustParseAddr("2001:db8:1::11"), dsrClient6},
	}
	how := setUpDSRBackend(t, topo.backend, "be-0", "192.0.2.10:80", "[2001:db8::10]:80")
	t.Logf("the backend decapsulates with %s", how)
	for _, s := range services {
		s.svc.Forwarding = ForwardingDSRIPIP
		s.svc.SNAT = netip.MustParseAddr("203.0.113.1")
		if s.svc.VIP.Addr().Is6() {
			s.svc.SNAT = netip.MustParseAddr("2001:db8:1::1")
		}
		backend := netip.AddrPortFrom(s.backend, s.svc.VIP.Port())
		if _, err := d.SetService(s.svc, []netip.AddrPort{backend}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		// The backend listens on the VIP, which it holds on lo.
		startEchoServer(t, topo.backend, s.svc.Proto, s.svc.VIP)
	}

	// A bulk upload: full-size segments, GSO aggregates, through the
	// tunnel. The path to the backend takes the outer header (as the
	// operator must arrange, see bpf/README.md), so nothing is too big.
	for _, l := range []struct {
		ns   netns.NsHandle
		link string
	}{{topo.lb, "lb-b"}, {topo.backend, "be-0"}} {
		if err := inNetns(l.ns, func() error { return setMTU(l.link, 1540) }); err != nil {
			t.Fatal(err)
		}
	}
	bulk := netip.AddrPortFrom(services[0].svc.VIP.Addr(), 81)
	bulk6 := netip.AddrPortFrom(services[2].svc.VIP.Addr(), 81)
	for i, vip := range []netip.AddrPort{bulk, bulk6} {
		svc := Service{ID: uint32(4 + i), VIP: vip, Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"), Forwarding: ForwardingDSRIPIP}
		if vip.Addr().Is6() {
			svc.SNAT = netip.MustParseAddr("2001:db8:1::1")
		}
		if _, err := d.SetService(svc, []netip.AddrPort{netip.AddrPortFrom(services[2*i].backend, 81)}, constantTable(d.opts.TableSize, 0)); err != nil {
			t.Fatalf("SetService: %v", err)
		}
		startCountServer(t, topo.backend, vip)
	}

	for i, vip := range []netip.AddrPort{bulk, bulk6} {
		t.Run("bulk "+vip.String(), func(t *testing.T) {
			got, err := upload(topo.client, vip, make([]byte, bulkSize))
			if err != nil || got != bulkSize {
				t.Fatalf("upload through %s: the backend counted %d, %v; want %d\n%s", vip, got, err, bulkSize,
					dsrDiagnostics(t, d, topo, uint32(4+i)))
			}
			for reason, n := range serviceState(t, d, uint32(4+i)).Stats.Drops {
				if n != 0 {
					t.Errorf("%d packets dropped as %s", n, reason)
				}
			}
		})
	}
	for _, s := range services {
		name := fmt.Sprintf("%s/%d", s.svc.VIP, s.svc.Proto)
		t.Run(name, func(t *testing.T) {
			checkClientSeen(t, d, topo, s.svc, s.client, name)
			checkOneFlow(t, d, s.svc.ID)
		})
	}
}

// dsrDiagnostics describes what a failed exchange left behind: the
// service's counters and every namespace's interface counters.
func dsrDiagnostics(t *testing.T, d *Dataplane, topo dsrTopology, id uint32) string {
	st := serviceState(t, d, id)
	out := fmt.Sprintf("service counters %+v\n", st.Stats)
	for _, n := range []struct {
		name string
		ns   netns.NsHandle
	}{{"client", topo.client}, {"lb", topo.lb}, {"backend", topo.backend}} {
		inNetns(n.ns, func() error {
			b, _ := exec.Command("sh", "-c", "ip -s -br link; nstat -az 2>/dev/null | awk \"\\$2 != 0\"").CombinedOutput()
			r, _ := exec.Command("sh", "-c", "ip route; ip -6 route; ip neigh").CombinedOutput()
			out += fmt.Sprintf("%s:\n%s%s", n.name, b, r)
			return nil
		})
	}
	return out
}

// TestDecapsulator checks the end-to-end test's stand-in for the kernel's
// tunnel devices: it turns an encapsulated frame, built independently of
// the program, back into the client's frame.
func TestDecapsulator(t *testing.T) {
	needBPF(t)
	ns := newNetns(t)
	prog := testenv.Decapsulator(t)
	for _, p := range []testPacket{
		{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("hello")},
		{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
	} {
		in := p.build()
		enc := encapsulated(in, snat4, backends4[0].Addr(), macDst[:], macSrc[:], 7)
		if p.src.Addr().Is6() {
			enc = encapsulated(in, snat6, backends6[0].Addr(), macDst[:], macSrc[:], 0)
		}
		ret, out := runProg(t, prog, ns, enc, 0)
		expectSame(t, p.dst.String(), ret, out, tcActOK, in)
	}
}

// bulkSize is what the bulk upload sends: many full-size segments.
const bulkSize = 1 << 20

// startCountServer accepts TCP connections on addr in ns and answers each
// with the number of bytes it read before the client closed its side.
func startCountServer(t *testing.T, ns netns.NsHandle, addr netip.AddrPort) {
	t.Helper()
	var ln *net.TCPListener
	err := inNetns(ns, func() (err error) {
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	testenv.AcceptEach(t, ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(4 * ioTimeout))
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%d", n)
	})
}

// checkClientSeen exchanges a message with svc from topo's client and
// checks that the backend, which prefixes its reply with the peer address
// its socket names, saw the client's own address.
func checkClientSeen(t *testing.T, d *Dataplane, topo dsrTopology, svc Service, client netip.Addr, name string) {
	t.Helper()
	reply, err := exchange(topo.client, svc.Proto, svc.VIP, "hello "+name)
	if err != nil {
		t.Fatalf("exchange with %s: %v\n%s", svc.VIP, err, dsrDiagnostics(t, d, topo, svc.ID))
	}
	seen, msg, _ := strings.Cut(reply, " ")
	peer, err := netip.ParseAddrPort(seen)
	if err != nil || msg != "hello "+name {
		t.Fatalf("reply %q: want \"<peer> hello %s\"", reply, name)
	}
	if peer.Addr() != client {
		t.Errorf("backend saw the client as %s, want the client's own address %s", peer, client)
	}
}

// checkOneFlow checks that service id counted the client's packets on one
// new flow, all to its backend, and dropped none.
func checkOneFlow(t *testing.T, d *Dataplane, id uint32) {
	t.Helper()
	st := serviceState(t, d, id)
	if st.Stats.Packets < 1 || st.Stats.NewFlows != 1 || st.BackendStats[0].Packets != st.Stats.Packets {
		t.Errorf("counters %+v, backend %+v: want the client's packets on one new flow, all to the backend",
			st.Stats, st.BackendStats[0])
	}
	for reason, n := range st.Stats.Drops {
		if n != 0 {
			t.Errorf("%d packets dropped as %s", n, reason)
		}
	}
}
