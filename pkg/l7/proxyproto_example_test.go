package l7_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// The PROXY protocol both ways: the server believes the header of the
// balancer in front (on loopback here), and announces the client it
// names to the origin behind, which echoes what it was told.
func ExampleServer_proxyProtocol() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { // the origin: reads the header, answers its source
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h, err := proxyproto.Read(c)
				if err != nil {
					return
				}
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				src := h.Source.String()
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(src), src)
			}()
		}
	}()
	defer ln.Close()
	pool, _ := lb.NewStatic(lb.MustBackend(ln.Addr().String(), 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	upstream.Update(context.Background())

	front := &l7.Server{
		Proxy:         &l7.Balanced{LB: upstream, Template: l7.Peer{ProxyProtocol: proxyproto.V2}},
		ProxyProtocol: &proxyproto.Policy{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	}
	addr := serve(front)
	defer front.Close()

	// The balancer: a v1 header for a client at 203.0.113.7, then the
	// client's request.
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	fmt.Fprintf(c, "PROXY TCP4 203.0.113.7 %s 40000 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", c.RemoteAddr().(*net.TCPAddr).IP)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: 203.0.113.7:40000
}
