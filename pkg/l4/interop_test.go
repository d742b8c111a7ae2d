package l4

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// TestNGINXReceivesProxyProtocol sends the PROXY protocol, versions 1 and
// 2, through the TCP proxy to a real NGINX listening with
// proxy_protocol, which answers the addresses it was told: those of the
// client (bound to 127.0.0.7) and of the proxy's listener.
func TestNGINXReceivesProxyProtocol(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		upstream := testenv.NGINXProxyProtocol(t)
		for _, v := range []proxyproto.Version{proxyproto.V1, proxyproto.V2} {
			t.Run(fmt.Sprint("v", v), func(t *testing.T) {
				proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{upstream}), ProxyProtocol: v}
				addr := serveTCP(t, proxy, "127.0.0.1")
				d := net.Dialer{Timeout: testTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}
				for i := range 3 {
					c, err := d.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					c.SetDeadline(time.Now().Add(testTimeout))
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						c.Close()
						t.Fatal(err)
					}
					got, _ := io.ReadAll(resp.Body)
					c.Close()
					if want := c.LocalAddr().String() + " " + addr; string(got) != want {
						t.Errorf("connection %d: NGINX was told %q, want %q", i, got, want)
					}
				}
			})
		}
	})
}
