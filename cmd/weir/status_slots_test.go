package main

import (
	"testing"

	"github.com/weir-lb/weir/pkg/admin"
)

// TestInFlightCells: weir status shows a limited backend's requests over
// its max_connections, and a pool's queue, and nothing more without them.
func TestInFlightCells(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"backend without a limit", backendInFlight(admin.BackendStatus{InFlight: 3}), "3"},
		{"backend with a limit", backendInFlight(admin.BackendStatus{InFlight: 3, MaxConnections: 8}), "3/8"},
		{"service without a queue", serviceInFlight(admin.ServiceStatus{InFlight: 12}), "12"},
		{"service with a queue", serviceInFlight(admin.ServiceStatus{InFlight: 12, Queue: &admin.QueueStatus{Length: 3, Size: 1024}}), "12 +3/1024 queued"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
