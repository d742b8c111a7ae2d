package bgp_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/weir-lb/weir/pkg/bgp"
)

// A speaker announces a VIP while its service can serve, and leaves
// gracefully. This one has no peers (a real one lists its routers in
// Config.Peers), so it runs anywhere, without privileges or network: no
// Listen means no listening socket either.
func Example() {
	s, err := bgp.New(bgp.Config{
		ASN:             64497,
		RouterID:        netip.MustParseAddr("192.0.2.1"),
		GracefulRestart: 120 * time.Second,
		// Peers: []bgp.PeerConfig{{Address: netip.MustParseAddr("192.0.2.254"), ASN: 64496, HoldTime: 9 * time.Second}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	communities, _ := bgp.ParseCommunities([]string{"64497:100", "no-export"})
	vip := netip.MustParsePrefix("203.0.113.10/32")
	_ = s.Announce(vip, communities)
	_ = s.Announce(vip, communities) // idempotent
	_ = s.Announce(netip.MustParsePrefix("2001:db8::10/128"), nil)
	for _, r := range s.Announced() {
		fmt.Println("announced", r.Prefix, r.Communities)
	}

	_ = s.Withdraw(vip) // the service lost its last backend
	st := s.Stats()
	fmt.Println("announces", st.Announces, "withdraws", st.Withdraws, "announced", st.Announced)

	// On SIGTERM: withdraw everything, let routers converge, close.
	if err := s.Shutdown(ctx, 10*time.Millisecond); err != nil {
		fmt.Println(err)
	}
	fmt.Println("withdraws after shutdown", s.Stats().Withdraws)
	// Output:
	// announced 203.0.113.10/32 [64497:100 no-export]
	// announced 2001:db8::10/128 []
	// announces 2 withdraws 1 announced 1
	// withdraws after shutdown 2
}

func ExampleParseCommunity() {
	for _, s := range []string{"64497:100", "no-export", "65536:1"} {
		c, err := bgp.ParseCommunity(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s = %#08x\n", c, uint32(c))
	}
	// Output:
	// 64497:100 = 0xfbf10064
	// no-export = 0xffffff01
	// community "65536:1": AS part is not a number from 0 to 65535
}

// An upgrade hands the routes from the old process's speaker to the new
// one's without the routers withdrawing them: the old one releases its
// sessions (no withdraw, no NOTIFICATION: a graceful restart for the
// routers), and the new one, within the restart time, announces what it
// decided and resumes the sessions as a restarting speaker. Both are in
// one process here, without peers, so it runs anywhere.
func ExampleSpeaker_Resume() {
	cfg := bgp.Config{
		ASN:             64497,
		RouterID:        netip.MustParseAddr("192.0.2.1"),
		GracefulRestart: 120 * time.Second, // Release and Resume need it
	}
	vip := netip.MustParsePrefix("203.0.113.10/32")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	old, _ := bgp.New(cfg)
	if err := old.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = old.Announce(vip, nil)
	// The new process reported ready: let go of the sessions.
	old.Release()
	fmt.Println("old: withdraws", old.Stats().Withdraws, "after release:", old.Announce(vip, nil))

	// The new process, once its first health round has decided: the
	// routes first, so that the End-of-RIB after them drops nothing it
	// keeps.
	successor, _ := bgp.New(cfg)
	_ = successor.Announce(vip, nil)
	if err := successor.Resume(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer successor.Stop()
	for _, r := range successor.Announced() {
		fmt.Println("successor: announced", r.Prefix)
	}
	// Output:
	// old: withdraws 0 after release: bgp: announce 203.0.113.10/32: bgp: speaker stopped
	// successor: announced 203.0.113.10/32
}
