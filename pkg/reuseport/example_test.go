package reuseport_test

import (
	"fmt"
	"log"
	"net/netip"

	"github.com/weir-lb/weir/pkg/reuseport"
)

// A group without a pin path has no steering, and so one socket, whatever
// the size asked for.
func ExampleOpen() {
	g, err := reuseport.Open("tcp", "127.0.0.1:0", nil, reuseport.Config{Sockets: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	if err := g.Activate(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sockets:", len(g.Listeners()))
	fmt.Println("steered:", g.Steering() == nil)
	// Output:
	// sockets: 1
	// steered: false
}

func ExampleGroupName() {
	fmt.Println(reuseport.GroupName(netip.MustParseAddrPort("127.0.0.1:8080")))
	fmt.Println(reuseport.GroupName(netip.MustParseAddrPort("[2001:db8::1]:443")))
	// Output:
	// tcp_127_0_0_1_8080
	// tcp_2001_0db8_0000_0000_0000_0000_0000_0001_443
}
