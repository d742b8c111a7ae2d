package l7_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// serve runs srv on a free loopback port and returns its address.
func serve(srv *l7.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String()
}

// A load balancer in front of two origins, with round robin. Each origin
// here is weir's own built-in Respond proxy.
func Example() {
	a := serve(&l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("from a")}})
	b := serve(&l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("from b")}})

	pool, _ := lb.NewStatic(lb.MustBackend(a, 1), lb.MustBackend(b, 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	upstream.Update(context.Background())

	front := &l7.Server{Proxy: &l7.Balanced{LB: upstream}}
	addr := serve(front)
	defer front.Close()

	for range 4 {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// from a
	// from b
	// from a
	// from b
}

// maintenance answers every request itself while a flag is up: a
// RequestFilter that short-circuits the proxy.
type maintenance struct {
	*l7.Balanced
	down bool
}

func (m *maintenance) RequestFilter(s *l7.Session) (bool, error) {
	if !m.down {
		return false, nil
	}
	var h h1.Header
	h.Set("Retry-After", "120")
	return true, s.Respond(503, &h, []byte("back soon\n"))
}

// A phase of your own: the proxy answers without contacting an upstream.
func ExampleRequestFilter() {
	pool, _ := lb.NewStatic(lb.MustBackend("192.0.2.1:80", 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	upstream.Update(context.Background())

	front := &l7.Server{Proxy: &maintenance{Balanced: &l7.Balanced{LB: upstream}, down: true}}
	addr := serve(front)
	defer front.Close()

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.StatusCode, " ", resp.Header.Get("Retry-After"), " ", string(body))
	// Output: 503 120 back soon
}
