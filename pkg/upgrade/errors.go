package upgrade

import "errors"

// Errors of the handoff. Each is wrapped with what went wrong and the
// value at fault (the path, the peer's pid and uid, the socket), so test
// with errors.Is and show the whole message to the operator.
var (
	// ErrUnsupported is returned on operating systems other than Linux,
	// where weir does not hand sockets over.
	ErrUnsupported = errors.New("socket handoff is only supported on Linux")
	// ErrUnsafeSocketPath means upgrade_sock, its directory or its lock
	// file could let another user take part in the upgrade: a directory
	// writable by group or others (sticky or not), a file owned by someone
	// else, a symbolic link, a path too long for a Unix socket.
	ErrUnsafeSocketPath = errors.New("unsafe upgrade socket path")
	// ErrInProgress means another upgrade holds the upgrade socket.
	ErrInProgress = errors.New("an upgrade is already in progress")
	// ErrPeerCredentials means the process at the other end of the
	// upgrade socket runs as another user, and is neither this process's
	// user nor root.
	ErrPeerCredentials = errors.New("upgrade peer is not trusted")
	// ErrNoPeer means no process answered on the upgrade socket in time:
	// the new process saw no old one connect, or the old one found no new
	// one listening.
	ErrNoPeer = errors.New("no process answered on the upgrade socket")
	// ErrManifest means the socket manifest is malformed or does not
	// describe the descriptors that came with it.
	ErrManifest = errors.New("invalid socket manifest")
	// ErrVersion means the peer speaks another version of the manifest.
	ErrVersion = errors.New("unsupported upgrade protocol version")
	// ErrProtocol means the peer sent a message out of turn.
	ErrProtocol = errors.New("upgrade protocol violation")
	// ErrAborted means the new process gave up (bad configuration, a
	// socket it could not adopt); the old process keeps serving.
	ErrAborted = errors.New("the new process aborted the upgrade")
	// ErrCanceled means the old process gave up waiting for the new one
	// to report ready and keeps serving; the new process must exit.
	ErrCanceled = errors.New("the old process canceled the upgrade")
	// ErrPeerGone means the peer closed the upgrade connection without a
	// word, which in practice means it exited or was killed.
	ErrPeerGone = errors.New("the peer process closed the upgrade connection")
	// ErrNotInherited means the new process asked for a socket it did not
	// inherit (or already adopted): it should open a new one.
	ErrNotInherited = errors.New("no such inherited socket")
	// ErrUnsupportedSocket means a socket cannot be handed over: it is
	// not a listening TCP socket or a bound UDP socket, or its Go type
	// does not expose its descriptor.
	ErrUnsupportedSocket = errors.New("socket cannot be handed over")
	// ErrClosed means the handoff or inheritance was already finished.
	ErrClosed = errors.New("upgrade already finished")
)
