// Package upgrade hands weir's listening sockets from a running process
// to its successor, for an upgrade (or a configuration change) that drops
// no connection: the kernel sockets, accept queues included, change
// owner, and clients never see a closed port.
//
// The new process (weir -u) calls Receive: it listens on the upgrade
// socket (upgrade_sock) and waits. The old process, on SIGQUIT, calls
// Offer: it connects — retrying while the new process is not there yet,
// so either may start first — and sends a typed manifest (service,
// configured address, listener index, bound address, socket options) with
// the descriptors, over SCM_RIGHTS. The new process checks each
// descriptor against its entry, adopts the sockets its configuration
// uses (Inheritance.Listener, Inheritance.PacketConn), finishes
// starting, and calls Ready; the old process's Handoff.Wait then returns
// nil and it stops accepting and drains. If the new process fails at any
// step — it aborts, crashes, or takes too long — Wait returns why and
// the old process carries on serving as if nothing happened.
//
// Both ends check the other's credentials (SO_PEERCRED: same user or
// root), the upgrade socket is private (mode 0600, in a directory no
// other user may write to), and a lock beside it admits one upgrade at
// a time. The package is Linux-only; elsewhere its functions return
// ErrUnsupported. README.md describes the protocol.
package upgrade
