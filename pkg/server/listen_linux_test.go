package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/config"
)

// A server adopts the sockets handed over and binds the rest of each
// listener's group: with steering (root), threads: 2 makes two sockets a
// listener, of which the predecessor handed over the first.
func TestListenWithAdoptsSockets(t *testing.T) {
	p := freePorts(t, 2)
	cfg, err := config.Parse("adopt.yaml", []byte(fmt.Sprintf(`
version: 1
threads: 2
services:
  - {name: a, kind: respond, body: "adopted", listen: ["127.0.0.1:%d", "127.0.0.1:%d"]}
`, p[0], p[1])))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		cfg.BPF.PinPath = filepath.Join(testenv.BPFFS(t), "weir")
	}
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := &handingOver{}
	if err := srv.ListenWith(open); err != nil {
		t.Fatal(err)
	}
	k := 1 // without steering, one socket a listener
	if os.Geteuid() == 0 {
		k = 2
	}
	var want, got []string
	for i, port := range p {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		// Member 0 is handed over; asking for member 1 finds none.
		want = append(want, fmt.Sprint(ListenerSpec{"a", "tcp", addr, i, 0}), fmt.Sprint(ListenerSpec{"a", "tcp", addr, i, 1}))
		for m := range k {
			got = append(got, fmt.Sprint(ListenerSpec{"a", "tcp", addr, i, m}))
		}
	}
	if fmt.Sprint(open.asked) != fmt.Sprint(want) {
		t.Errorf("asked for %v, want %v", open.asked, want)
	}
	var have []string
	for i, s := range srv.Sockets() {
		have = append(have, fmt.Sprint(s.ListenerSpec))
		if s.Member == 0 && s.Listener != open.given[s.Index] {
			t.Errorf("socket %d (%v) is not the one handed over", i, s.ListenerSpec)
		}
	}
	if fmt.Sprint(have) != fmt.Sprint(got) {
		t.Errorf("Sockets() = %v, want %v", have, got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	for _, port := range p {
		if code, body := fetch(c, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || body != "adopted" {
			t.Fatalf("port %d: %d %q", port, code, body)
		}
	}
}

// handingOver stands in for a predecessor: it hands over a new
// SO_REUSEPORT socket as member 0 of each listener, nothing else, and
// records what it was asked for.
type handingOver struct {
	asked []ListenerSpec
	given []net.Listener
}

func (h *handingOver) Listener(l ListenerSpec) (net.Listener, error) {
	h.asked = append(h.asked, l)
	if l.Member > 0 {
		return nil, nil
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return err
	}}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", l.Addr)
	h.given = append(h.given, ln)
	return ln, err
}

func (h *handingOver) PacketConn(l ListenerSpec) (net.PacketConn, error) {
	h.asked = append(h.asked, l)
	return nil, nil
}
