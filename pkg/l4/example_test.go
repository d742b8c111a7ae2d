package l4_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/weir-lb/weir/pkg/l4"
	"github.com/weir-lb/weir/pkg/lb"
)

// A TCP service in front of one echo server, chosen by Maglev. In weir the
// load balancer would also run health checks (lb.Options.HealthCheck and
// Run), which the proxy then honours.
func ExampleTCPProxy() {
	backend, _ := net.Listen("tcp", "127.0.0.1:0")
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	pool, _ := lb.NewStatic(lb.MustBackend(backend.Addr().String(), 1))
	upstreams, _ := lb.New(lb.Maglev{}, lb.Options{Discovery: pool})
	upstreams.Update(context.Background())

	proxy := &l4.TCPProxy{LB: upstreams, MaxRetries: 2}
	defer proxy.Close()
	vip, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(vip)

	c, _ := net.Dial("tcp", vip.Addr().String())
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite() // the half-close reaches the backend
	reply, _ := io.ReadAll(c)
	fmt.Println(string(reply))
	// Output: hello
}

// A UDP service: each client address and port is a flow with its own
// socket to the backend, ended after IdleTimeout without traffic.
func ExampleUDPProxy() {
	backend, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer backend.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := backend.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			backend.WriteToUDPAddrPort(buf[:n], from)
		}
	}()

	pool, _ := lb.NewStatic(lb.MustBackend(backend.LocalAddr().String(), 1))
	upstreams, _ := lb.New(lb.Maglev{}, lb.Options{Discovery: pool})
	upstreams.Update(context.Background())

	proxy := &l4.UDPProxy{LB: upstreams}
	defer proxy.Close()
	vip, _ := net.ListenPacket("udp", "127.0.0.1:0")
	go proxy.Serve(vip)

	c, _ := net.Dial("udp", vip.LocalAddr().String())
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	reply := make([]byte, 16)
	n, _ := c.Read(reply)
	fmt.Println(string(reply[:n]), proxy.Stats().ActiveFlows)
	// Output: ping 1
}
