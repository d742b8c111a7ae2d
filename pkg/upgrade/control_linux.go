package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// unixControl is the upgrade connection: a SOCK_SEQPACKET Unix socket,
// so that each record arrives whole, with exactly the descriptors sent
// along with it, or not at all.
type unixControl struct {
	conn      *net.UnixConn
	buf       []byte // one record; recv is never called concurrently
	oob       []byte
	closeOnce sync.Once
}

var _ control = (*unixControl)(nil)

func newUnixControl(conn *net.UnixConn) *unixControl {
	return &unixControl{
		conn: conn,
		buf:  make([]byte, maxRecordBytes),
		// Room for exactly one record's descriptors: more is truncated
		// (MSG_CTRUNC) and refused.
		oob: make([]byte, unix.CmsgSpace(maxFDsPerRecord*4)),
	}
}

// longAgo is a deadline in the past: setting it wakes a blocked call.
var longAgo = time.Unix(1, 0)

func (c *unixControl) send(ctx context.Context, m message) error {
	return c.sendFDs(ctx, m, nil)
}

// sendFDs sends m as one record carrying fds.
func (c *unixControl) sendFDs(ctx context.Context, m message, fds []int) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	err = bounded(ctx, c.conn.SetWriteDeadline, func() error {
		n, oobn, err := c.conn.WriteMsgUnix(b, oob, nil)
		if err == nil && (n != len(b) || oobn != len(oob)) {
			err = io.ErrShortWrite
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

// recv reads one record that must carry no descriptors.
func (c *unixControl) recv(ctx context.Context) (message, error) {
	m, files, err := c.recvFiles(ctx)
	if err != nil {
		return message{}, err
	}
	if len(files) > 0 {
		closeFiles(files)
		return message{}, fmt.Errorf("%w: a %s record carried %d descriptors", ErrProtocol, m.Type, len(files))
	}
	return m, nil
}

// recvFiles reads one record and the descriptors that came with it, each
// already an *os.File so that no error path can leak one.
func (c *unixControl) recvFiles(ctx context.Context) (message, []*os.File, error) {
	var n, oobn, flags int
	err := bounded(ctx, c.conn.SetReadDeadline, func() (err error) {
		n, oobn, flags, _, err = c.conn.ReadMsgUnix(c.buf, c.oob)
		if errors.Is(err, unix.ECONNRESET) {
			// The peer hung up with records of ours unread. Linux
			// reports that before the records the peer sent last, which
			// a second read returns (or EOF: the peer is gone, so the
			// read cannot block).
			n, oobn, flags, _, err = c.conn.ReadMsgUnix(c.buf, c.oob)
		}
		return err
	})
	files, ferr := filesFromRights(c.oob[:oobn])
	if err = errors.Join(err, ferr, truncation(flags)); err != nil {
		closeFiles(files)
		return message{}, nil, fmt.Errorf("receive: %w", err)
	}
	m, err := decode(c.buf[:n])
	if err != nil {
		closeFiles(files)
		return message{}, nil, err
	}
	return m, files, nil
}

// truncation reports a record or descriptors the kernel cut short.
func truncation(flags int) error {
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		return fmt.Errorf("%w: descriptors were lost in transit (too many for one record, or this process reached its open-file limit: see ulimit -n)", ErrManifest)
	case flags&unix.MSG_TRUNC != 0:
		return fmt.Errorf("%w: a record was longer than %d bytes", ErrManifest, maxRecordBytes)
	}
	return nil
}

// filesFromRights wraps every descriptor of the SCM_RIGHTS messages in
// oob. Go reads with MSG_CMSG_CLOEXEC, so none leaks into a child.
func filesFromRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %w", ErrManifest, err)
	}
	var files []*os.File
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return files, fmt.Errorf("%w: SCM_RIGHTS: %w", ErrManifest, err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "inherited socket"))
		}
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// peerCred is who is at the other end: SO_PEERCRED, the credentials the
// kernel recorded when the peer connected (or listened).
func (c *unixControl) peerCred() (unix.Ucred, error) {
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return unix.Ucred{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return unix.Ucred{}, err
	}
	if credErr != nil {
		return unix.Ucred{}, os.NewSyscallError("getsockopt SO_PEERCRED", credErr)
	}
	return *cred, nil
}

func (c *unixControl) close() {
	c.closeOnce.Do(func() { c.conn.Close() })
}

// bounded runs op, a blocking call on a connection, until ctx is done:
// the deadline setDeadline controls is moved to the past to wake it.
// Errors say whether ctx ended it or the peer hung up.
func bounded(ctx context.Context, setDeadline func(time.Time) error, op func() error) error {
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	_ = setDeadline(time.Time{})
	stop := afterDone(ctx, func() { _ = setDeadline(longAgo) })
	err := op()
	stop()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctxError(ctx)
	case hungUp(err):
		return fmt.Errorf("%w (%w)", ErrPeerGone, err)
	}
	return err
}

// hungUp reports the errors of a connection whose peer closed it.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ENOTCONN)
}

// afterDone runs f once ctx is done, unless the returned stop comes
// first; stop waits for an f already started, so that f never acts on
// what the caller does next.
func afterDone(ctx context.Context, f func()) (stop func()) {
	finished := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(finished)
		f()
	})
	return func() {
		if !cancel() {
			<-finished
		}
	}
}

// ctxError is ctx's error, with its cause when one was given.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}
