//go:build !linux

package l4

import "testing"

// engines are the TCP proxy's data paths here: a goroutine per connection.
var engines = []struct {
	name     string
	portable bool
}{{"goroutines", true}}

func loopFds(*TCPProxy) (client, backend int, ok bool) { return -1, -1, false }

// forEachEngine runs test once per data path.
func forEachEngine(t *testing.T, test func(t *testing.T, portable bool)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.portable) })
	}
}
