package l4

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/weir-lb/weir/pkg/proxyproto"
)

// TestTCPProxyProtocol checks that with ProxyProtocol set every backend
// connection begins with a header naming the client and the address it
// connected to, before the client's own bytes; and without it, none.
func TestTCPProxyProtocol(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		for _, host := range loopbacks(t) {
			for _, v := range []proxyproto.Version{0, proxyproto.V1, proxyproto.V2} {
				t.Run(host+"/v"+itoa(int(v)), func(t *testing.T) {
					// The backend answers the header's source and destination,
					// or "none" when the connection does not begin with one,
					// then echoes.
					backend := startTCPBackend(t, host, func(c net.Conn) {
						br := bufio.NewReader(c)
						first, err := br.Peek(5)
						if err != nil {
							return
						}
						answer := "none"
						if string(first) != "hello" {
							h, err := proxyproto.Read(br)
							if err != nil {
								io.WriteString(c, "bad header: "+err.Error()+"\n")
								return
							}
							answer = h.Source.String() + " " + h.Destination.String()
						}
						io.WriteString(c, answer+"\n")
						io.Copy(c, br)
						c.(*net.TCPConn).CloseWrite()
					})
					proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{backend.addr}), ProxyProtocol: v}
					addr := serveTCP(t, proxy, host)
					c := dialTCP(t, addr)
					if _, err := c.Write([]byte("hello")); err != nil {
						t.Fatal(err)
					}
					c.CloseWrite()
					got, err := io.ReadAll(c)
					if err != nil {
						t.Fatal(err)
					}
					want := "none\nhello"
					if v != 0 {
						want = c.LocalAddr().String() + " " + c.RemoteAddr().String() + "\nhello"
					}
					if string(got) != want {
						t.Errorf("backend saw %q, want %q", got, want)
					}
				})
			}
		}
	})
}
