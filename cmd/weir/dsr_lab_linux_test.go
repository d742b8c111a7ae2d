package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/lab"
	"github.com/weir-lb/weir/internal/testenv"
)

// backendLog is what a lab backend writes down about each request: the
// peer its socket saw.
type backendLog struct {
	mu    sync.Mutex
	lines []string
}

func (b *backendLog) add(proto string, peer string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, proto+" from "+peer)
}

func (b *backendLog) has(proto string, client netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.ContainsFunc(b.lines, func(l string) bool {
		p, peer, _ := strings.Cut(l, " from ")
		ap, err := netip.ParseAddrPort(peer)
		return p == proto && err == nil && ap.Addr() == client
	})
}

func (b *backendLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// setUpDSRBackend applies scripts/dsr-backend in role's namespace for the
// lab's DSR VIPs, with options opts (--encap gue). Where the kernel has no
// ipip and ip6tnl devices or no fou (the development VM's is built without
// them) it uses --decap none and puts testenv's decapsulator (which takes
// GUE on the default port) on the backend's interface in their place.
func setUpDSRBackend(t testing.TB, l *lab.Lab, role string, opts ...string) {
	t.Helper()
	script := filepath.Join(filepath.Dir(lab.Script()), "dsr-backend")
	vips := append(opts, lab.DSRVIP4.String(), lab.DSRVIP6.String())
	out, err := l.Exec(role, script, append([]string{"up"}, vips...)...)
	if err == nil {
		return
	}
	if !strings.Contains(out, "cannot create the") {
		t.Fatal(err)
	}
	t.Logf("%s: this kernel cannot decapsulate (%s); using a tc decapsulator", role, strings.TrimSpace(out))
	if _, err := l.Exec(role, script, append([]string{"up", "--decap", "none"}, vips...)...); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(role, func() error { return testenv.AttachDecapsulator(t, "eth0") }); err != nil {
		t.Fatal(err)
	}
}

// TestLabDSR runs weir on the BPF data plane in the lab with direct server
// return services, IPv4 and IPv6, TCP and UDP, to backend b1 set up by
// scripts/dsr-backend. The backend's own log shows the client's address
// (198.51.100.2, 2001:db8:1::2), and the client's connected sockets accept
// the answers, which come from the VIP without the balancer translating
// them (in the lab the balancer is also the backends' router, so they
// cross its namespace as forwarded packets).
// It runs at both hooks.
func TestLabDSR(t *testing.T) {
	for _, attach := range labAttaches {
		t.Run(attach, func(t *testing.T) { testLabDSR(t, "ipip", attach) })
	}
}

// testLabDSR is TestLabDSR with encap (ipip or gue) at hook attach.
func testLabDSR(t *testing.T, encap, attach string) {
	testenv.NeedRoot(t)
	l := lab.UpFor(t, attach)
	setUpDSRBackend(t, l, lab.B1, "--encap", encap)
	// The balancer routes the answers from VIPs it has no route to.
	sysctls := []string{"-qw", "net.ipv4.conf.all.rp_filter=0"}
	for _, dev := range l.BackendInterfaces() {
		sysctls = append(sysctls, "net.ipv4.conf."+dev+".rp_filter=0")
	}
	if _, err := l.Exec(lab.Balancer, "sysctl", sysctls...); err != nil {
		t.Fatal(err)
	}
	const port = 8080
	log := &backendLog{}
	for _, network := range []string{"tcp4", "tcp6"} {
		// A wildcard listener: a connection's answers leave from the
		// address it was made to, the VIP.
		ln, err := l.Listen(lab.B1, network, fmt.Sprintf(":%d", port))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.add("tcp", r.RemoteAddr)
			io.WriteString(w, r.RemoteAddr)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	for _, vip := range []netip.Addr{lab.DSRVIP4, lab.DSRVIP6} {
		// UDP answers take the socket's address: bound to the VIP.
		pc, err := l.ListenPacket(lab.B1, "udp", netip.AddrPortFrom(vip, port).String())
		if err != nil {
			t.Fatal(err)
		}
		answerUDP(t, pc, func(peer net.Addr, msg []byte) []byte {
			log.add("udp", peer.String())
			return []byte(peer.String() + " " + string(msg))
		})
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "weir.yaml")
	yaml := fmt.Sprintf(`version: 1
pid_file: %s
upgrade_sock: %s
bpf:
  pin_path: %s
  attach: %[9]s
services:
  - {name: web4, kind: l4, protocol: tcp, vip: "%[4]s", interface: cli, dataplane: bpf,
     forwarding: dsr, encap: %[8]s, upstream: {backends: ["%[5]s"]}}
  - {name: web6, kind: l4, protocol: tcp, vip: "%[6]s", interface: cli, dataplane: bpf,
     forwarding: dsr, encap: %[8]s, upstream: {backends: ["%[7]s"]}}
  - {name: udp4, kind: l4, protocol: udp, vip: "%[4]s", interface: cli, dataplane: bpf,
     forwarding: dsr, encap: %[8]s, upstream: {backends: ["%[5]s"]}}
  - {name: udp6, kind: l4, protocol: udp, vip: "%[6]s", interface: cli, dataplane: bpf,
     forwarding: dsr, encap: %[8]s, upstream: {backends: ["%[7]s"]}}
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), l.PinPath(),
		netip.AddrPortFrom(lab.DSRVIP4, port), netip.AddrPortFrom(lab.BackendAddr4(0), port),
		netip.AddrPortFrom(lab.DSRVIP6, port), netip.AddrPortFrom(lab.BackendAddr6(0), port), encap, attach)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	wlog := logFile(t)
	weir := startLabWeir(t, l, conf, wlog)
	defer checkLabHook(t, l)
	for _, tc := range []struct {
		vip, client netip.Addr
	}{{lab.DSRVIP4, lab.ClientAddr4}, {lab.DSRVIP6, lab.ClientAddr6}} {
		vip := netip.AddrPortFrom(tc.vip, port)
		waitVIP(t, l, weir, vip.String(), wlog)
		body, err := labGet(l, vip.String())
		if err != nil {
			t.Fatalf("GET through %s: %v\n%s", vip, err, wlog)
		}
		if peer, err := netip.ParseAddrPort(body); err != nil || peer.Addr() != tc.client {
			t.Errorf("through %s the backend answered %q, want the client's address %s", vip, body, tc.client)
		}
		reply, err := labEchoConnected(l, vip.String(), "ping")
		if err != nil {
			t.Fatalf("UDP through %s: %v\n%s", vip, err, wlog)
		}
		if peer, msg, _ := strings.Cut(reply, " "); msg != "ping" || !strings.HasPrefix(peer, addrPrefix(tc.client)) {
			t.Errorf("UDP through %s: reply %q, want \"<%s:port> ping\"", vip, reply, tc.client)
		}
		for _, proto := range []string{"tcp", "udp"} {
			if !log.has(proto, tc.client) {
				t.Errorf("backend b1's log has no %s request from %s:\n%s", proto, tc.client, log)
			}
		}
	}
	// The kernel's view: the services forward in the encapsulation asked for.
	var status, errOut bytes.Buffer
	if code := run([]string{"status", "-pin", l.PinPath()}, &status, &errOut); code != 0 ||
		strings.Count(status.String(), "dsr "+encap+" from") != 4 {
		t.Errorf("weir status (exit %d) does not show 4 services in dsr %s:\n%s%s", code, encap, &status, &errOut)
	}
}

// addrPrefix is how a net.Addr string of a starts: "198.51.100.2:" or
// "[2001:db8:1::2]:".
func addrPrefix(a netip.Addr) string {
	return strings.TrimSuffix(netip.AddrPortFrom(a, 1).String(), "1")
}

// labEchoConnected sends msg to addr from a connected UDP socket in the
// client's namespace, which takes answers from addr only.
func labEchoConnected(l *lab.Lab, addr, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := l.Dial(ctx, lab.Client, "udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 512)
	for range 5 {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n]), nil
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return "", err
		}
	}
	return "", fmt.Errorf("no UDP reply from %s", addr)
}
