package l7

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/lb"
)

// cutTarget is a Proxy whose RequestFilter drops the first segment of
// the target with SetTarget, passing it a slice of the target itself.
type cutTarget struct{ *Balanced }

func (c cutTarget) RequestFilter(s *Session) (bool, error) {
	t := s.Req.Target
	if i := strings.IndexByte(string(t[1:]), '/'); i >= 0 {
		s.SetTarget(t[i+1:])
	}
	return false, nil
}

// TestSetTarget sends requests of changing lengths over one HTTP/1.1
// connection and one HTTP/2 connection, whose streams reuse their
// buffers, so that a target set by one request is where the next one's
// arrives: each must reach the origin as set.
func TestSetTarget(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RequestURI) })
	addr := startProxy(t, &Server{Proxy: cutTarget{&Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)}}})
	paths := []string{"/cut/a", "/cut-longer-segment/bb/ccc?x=1", "/c/d", "/x/" + strings.Repeat("e", 300), "/y/f?q", "/z"}

	k := dialKeepAlive(t, addr)
	for round := range 3 {
		for _, p := range paths {
			want := p
			if i := strings.IndexByte(p[1:], '/'); i >= 0 {
				want = p[i+1:]
			}
			fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
			resp, err := http.ReadResponse(k.r, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || string(body) != want {
				t.Errorf("h1 round %d %s: %d %q, want %q", round, p, resp.StatusCode, body, want)
			}
		}
	}

	c := dialH2(t, addr)
	id := uint32(1)
	for round := range 3 {
		for _, p := range paths {
			want := p
			if i := strings.IndexByte(p[1:], '/'); i >= 0 {
				want = p[i+1:]
			}
			c.get(id, p)
			r := c.response(id)
			if r.status != 200 || string(r.body) != want {
				t.Errorf("h2 round %d %s: %d %q, want %q", round, p, r.status, r.body, want)
			}
			id += 2
		}
	}
}
