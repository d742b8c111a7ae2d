package l4

import "testing"

// engines are the TCP proxy's data paths here: the event loops, and a
// goroutine per connection (portable) for listeners they do not serve.
var engines = []struct {
	name     string
	portable bool
}{{"loops", false}, {"goroutines", true}}

// loopFds returns the descriptors of p's only connection on its event
// loops, once its backend side is up.
func loopFds(p *TCPProxy) (client, backend int, ok bool) {
	p.init()
	p.mu.Lock()
	set := p.loops
	p.mu.Unlock()
	if set == nil {
		return -1, -1, false
	}
	for _, l := range set.loops {
		l.call(func() {
			for _, f := range l.flows {
				if f != nil && !f.connecting {
					client, backend, ok = f.client, f.backend, true
				}
			}
		})
	}
	return client, backend, ok
}

// forEachEngine runs test once per data path.
func forEachEngine(t *testing.T, test func(t *testing.T, portable bool)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.portable) })
	}
}
