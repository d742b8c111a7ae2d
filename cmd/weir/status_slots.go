package main

import (
	"fmt"
	"strconv"

	"github.com/weir-lb/weir/pkg/admin"
)

// serviceInFlight is a service's IN FLIGHT cell: its requests in flight,
// and with a queue for backends at max_connections, how many wait in it
// of how many it holds ("12 +3/1024 queued").
func serviceInFlight(s admin.ServiceStatus) string {
	cell := strconv.FormatInt(s.InFlight, 10)
	if q := s.Queue; q != nil {
		cell += fmt.Sprintf(" +%d/%d queued", q.Length, q.Size)
	}
	return cell
}

// backendInFlight is a backend's IN FLIGHT cell: its requests in flight,
// over its max_connections when it has one ("3/8").
func backendInFlight(be admin.BackendStatus) string {
	cell := strconv.FormatInt(be.InFlight, 10)
	if be.MaxConnections > 0 {
		cell += "/" + strconv.FormatInt(be.MaxConnections, 10)
	}
	return cell
}
