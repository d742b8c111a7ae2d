// Package reuseport serves one TCP listen address as a SO_REUSEPORT group
// of K sockets, each with its own accept queue, so that accepting scales
// across cores, and steers new connections among them with an
// sk_reuseport eBPF program (bpf/reuseport.c).
//
// The control plane decides which sockets are active: a socket leaves the
// active set before it closes, so no new connection is queued on it, and
// on Linux 5.14+ the program also migrates connections still queued on a
// closing socket to an active one instead of letting the kernel reset
// them. That is what lets a graceful upgrade change the number of sockets
// (threads: 4 → 1 → 3) without losing a connection: the successor adopts
// the sockets its predecessor hands over, binds more or retires some, and
// activates its set; a retired socket closes when the predecessor lets go
// of its last descriptor, and its queue moves to a live socket.
//
// Steering needs CAP_BPF and a bpffs for the group's pinned maps, which a
// successor reuses (a socket can sit in only one sockarray). Without them
// a group has a single socket, handed over as it is: still lossless when
// the socket count does not change.
package reuseport
