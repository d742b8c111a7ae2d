package h1

// This file holds the few operations a proxy needs beyond parsing and
// writing messages.

// Wait blocks until the first byte of the next message is buffered, or
// the source fails (a read deadline, the peer closing). A server calls it
// between requests so that an idle keep-alive connection is bounded by the
// idle timeout, and only a message that has started by the (shorter)
// header timeout.
func (r *Reader) Wait() error {
	if r.r < r.w {
		return nil
	}
	r.makeRoom(0)
	_, err := r.fill(0)
	return err
}

// Shed returns the Reader's buffer to its pool when no byte is buffered,
// and reports whether it did. A server sheds the buffer of a keep-alive
// connection that has gone quiet, so that thousands of idle clients hold
// no buffer each; the next read takes one from the pool again. Nothing is
// lost: the Reader keeps its source, its body state and any error the
// source reported.
func (r *Reader) Shed() bool {
	if r.bufp == nil || r.r < r.w {
		return false
	}
	putBuf(r.bufp)
	r.bufp, r.buf = nil, nil
	r.r, r.w = 0, 0
	return true
}

// SetValue is Set with the value as bytes, sparing the caller a
// conversion.
func (h *Header) SetValue(name string, value []byte) { setField(h, name, value) }

// DelAt removes the i-th field, keeping the order of the others.
func (h *Header) DelAt(i int) {
	h.fields = append(h.fields[:i], h.fields[i+1:]...)
}

// HasPrefix reports whether the input starts with p, reading only as much
// as it needs to tell: it stops at the first byte that differs, so a
// shorter message that is not p never blocks it. A server uses it to tell
// the HTTP/2 connection preface from an HTTP/1 request.
func (r *Reader) HasPrefix(p []byte) (bool, error) {
	for {
		have := r.buf[r.r:r.w]
		n := min(len(have), len(p))
		if string(have[:n]) != string(p[:n]) {
			return false, nil
		}
		if n == len(p) {
			return true, nil
		}
		r.makeRoom(len(p))
		if _, err := r.fill(0); err != nil {
			return false, err
		}
	}
}
