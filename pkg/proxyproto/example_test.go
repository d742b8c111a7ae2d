package proxyproto_test

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"

	"github.com/weir-lb/weir/pkg/proxyproto"
)

// A balancer writes the header first on the connection to the server,
// carrying the client's address and the one it connected to.
func ExampleHeader_Append() {
	h := proxyproto.Proxied(proxyproto.V1,
		netip.MustParseAddrPort("203.0.113.7:51234"), netip.MustParseAddrPort("198.51.100.1:443"))
	b, err := h.Append(nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", b)
	// Output: "PROXY TCP4 203.0.113.7 198.51.100.1 51234 443\r\n"
}

// A server reads the header of a connection from a trusted balancer, and
// leaves what follows for its own protocol.
func ExampleRead() {
	h := proxyproto.Proxied(proxyproto.V2,
		netip.MustParseAddrPort("[2001:db8::7]:51234"), netip.MustParseAddrPort("[2001:db8::1]:443"))
	var conn bytes.Buffer
	h.WriteTo(&conn)
	conn.WriteString("GET / HTTP/1.1\r\n")

	policy := &proxyproto.Policy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if policy.Trusts(netip.MustParseAddr("10.1.2.3")) {
		got, err := proxyproto.Read(&conn)
		if err != nil {
			panic(err)
		}
		fmt.Println(got.HasAddrs(), got.Source)
	}
	rest, _ := io.ReadAll(&conn)
	fmt.Printf("%q\n", rest)
	// Output:
	// true [2001:db8::7]:51234
	// "GET / HTTP/1.1\r\n"
}
