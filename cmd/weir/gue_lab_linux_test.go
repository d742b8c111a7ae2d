package main

import "testing"

// TestLabDSRGUE is TestLabDSR with encap: gue: backend b1, set up by
// scripts/dsr-backend --encap gue, sees the client's own address, IPv4 and
// IPv6, TCP and UDP, through packets that crossed the lab in UDP to its
// default GUE port; at both hooks.
func TestLabDSRGUE(t *testing.T) {
	for _, attach := range labAttaches {
		t.Run(attach, func(t *testing.T) { testLabDSR(t, "gue", attach) })
	}
}
