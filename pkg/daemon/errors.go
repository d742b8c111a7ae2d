package daemon

import "errors"

// Errors the package returns, wrapped with the value at fault (the path,
// the user, the child's pid and message); test with errors.Is.
var (
	// ErrStartFailed means the daemon reported an error instead of
	// becoming ready; the wrapping error carries the daemon's message.
	ErrStartFailed = errors.New("daemon failed to start")
	// ErrExited means the daemon ended, or closed its report pipe,
	// without reporting ready or failed: it crashed, or exited early.
	ErrExited = errors.New("daemon exited before reporting ready")
	// ErrReadyTimeout means the daemon reported nothing within
	// DetachOptions.ReadyTimeout; Start killed it.
	ErrReadyTimeout = errors.New("daemon did not report ready in time")
	// ErrBadEnv means an environment variable this package reads
	// (ReadyFDEnv, NOTIFY_SOCKET) holds a value it cannot use.
	ErrBadEnv = errors.New("unusable environment variable")
	// ErrBadPIDFile means a pid file does not hold one positive decimal
	// process id.
	ErrBadPIDFile = errors.New("malformed pid file")
	// ErrUnknownUser means the user to switch to is neither a user name
	// nor a numeric user id.
	ErrUnknownUser = errors.New("unknown user")
	// ErrUnknownGroup means the group to switch to is neither a group
	// name nor a numeric group id, or cannot be inferred from the user.
	ErrUnknownGroup = errors.New("unknown group")
	// ErrNeedRoot means a switch of user or group was asked of a process
	// that is not root, which the kernel would refuse.
	ErrNeedRoot = errors.New("weir must start as root to switch user or group")
	// ErrStillPrivileged means the process identity after switching is
	// not the one asked for (for instance, a saved uid still 0); the
	// caller must not go on serving.
	ErrStillPrivileged = errors.New("privileges were not fully dropped")
)
