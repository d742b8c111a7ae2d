// Package l4 is weir's user-space layer 4 data plane: a TCP proxy that
// splices each client connection to a backend, and a UDP proxy that keeps
// one connected socket per client flow.
//
// It serves `kind: l4` services when the eBPF data plane is unavailable or
// `dataplane: userspace` asks for it, and chooses backends exactly as the
// rest of weir does: through a Selector, which any *lb.LoadBalancer is, so
// health checks, draining and the selection algorithm are shared with the
// HTTP proxy and the eBPF maps. The selection key of a connection or flow
// is the client's address and port, so flows spread over the backends and
// one client flow maps to the same backend for as long as the pool allows
// it (consistently, under Maglev).
package l4
