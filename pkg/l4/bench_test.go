package l4

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkTCPThroughput streams bytes from a client to a sink backend on
// loopback, through the proxy and directly for comparison; MB/s is the
// figure of merit.
func BenchmarkTCPThroughput(b *testing.B) {
	const chunk = 256 << 10
	received := make(chan int64, 1)
	sink := startTCPBackend(b, "127.0.0.1", func(c net.Conn) {
		buf := make([]byte, 1<<20)
		var total int64
		for {
			n, err := c.Read(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		received <- total
	})
	for _, bm := range append([]benchPath{{"direct", sink.addr}}, proxiedPaths(b, sink.addr)...) {
		b.Run(bm.name, func(b *testing.B) {
			c := dialTCP(b, bm.addr)
			c.SetDeadline(noDeadline)
			data := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			c.CloseWrite()
			if got := <-received; got != int64(b.N)*chunk {
				b.Fatalf("sink received %d bytes, want %d", got, int64(b.N)*chunk)
			}
			b.StopTimer()
			c.Close()
		})
	}
}

// benchPath is an address to benchmark a path to a backend by.
type benchPath struct{ name, addr string }

// proxiedPaths serves a proxy to backend once per engine, named
// proxy/ENGINE.
func proxiedPaths(b *testing.B, backend string) []benchPath {
	var paths []benchPath
	for _, e := range engines {
		proxy := &TCPProxy{LB: newPool(b, nil, []string{backend}), portable: e.portable}
		paths = append(paths, benchPath{"proxy/" + e.name, serveTCP(b, proxy, "127.0.0.1")})
	}
	return paths
}

// BenchmarkUDPEcho measures one datagram's round trip to an echo backend
// on loopback, through the proxy and directly for comparison, with the
// allocations of the whole round trip (proxy, client and backend).
func BenchmarkUDPEcho(b *testing.B) {
	backend := startUDPBackend(b, "127.0.0.1", 0).LocalAddr().String()
	proxy := &UDPProxy{LB: newPool(b, nil, []string{backend})}
	proxied := serveUDP(b, proxy, "127.0.0.1")

	for _, bm := range []struct{ name, addr string }{{"direct", backend}, {"proxy", proxied}} {
		b.Run(bm.name, func(b *testing.B) {
			c := dialUDP(b, bm.addr)
			c.SetDeadline(noDeadline)
			msg, reply := make([]byte, 64), make([]byte, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadAtLeast(c, reply, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTCPConnection measures short connections, the new-connection
// path: each one sends a small request, the backend answers and closes,
// and the client reads to the end. Eight clients run at once, through the
// proxy and directly for comparison; the allocations are those of the
// whole exchange (client, proxy and backend), so the proxy's own are the
// difference from direct.
func BenchmarkTCPConnection(b *testing.B) {
	request := []byte("GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
	response := []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nb1\n")
	backend := startTCPBackend(b, "127.0.0.1", func(c net.Conn) {
		buf := make([]byte, 512)
		if _, err := c.Read(buf); err != nil {
			return
		}
		c.Write(response)
	})
	for _, bm := range append([]benchPath{{"direct", backend.addr}}, proxiedPaths(b, backend.addr)...) {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4) // 8 clients on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 512)
				for pb.Next() {
					c, err := net.Dial("tcp", bm.addr)
					if err != nil {
						b.Error(err)
						return
					}
					c.SetDeadline(time.Now().Add(testTimeout))
					if _, err := c.Write(request); err != nil {
						b.Error(err)
					}
					// To the end, so that the client's port is not left
					// in TIME_WAIT.
					n, err := io.ReadAtLeast(c, buf, len(response))
					if err == nil {
						_, err = c.Read(buf[n:])
					}
					if n != len(response) || err != io.EOF {
						b.Errorf("read %d bytes of the response, then %v; want %d, then EOF", n, err, len(response))
					}
					c.Close()
				}
			})
		})
	}
}
