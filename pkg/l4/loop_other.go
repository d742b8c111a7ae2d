//go:build !linux

package l4

import "net"

// loopSet is empty where there are no event loops: every listener is
// served with a goroutine per connection.
type loopSet struct{}

func (p *TCPProxy) serveOnLoops(net.Listener) (handled bool, err error) { return false, nil }
func (p *TCPProxy) stopLoopListeners()                                  {}
func (p *TCPProxy) abortLoopFlows()                                     {}
func (p *TCPProxy) stopLoops()                                          {}
