//go:build !unix

package l4

// initReceive has nothing to prepare: receive reads through the socket.
func (f *flow) initReceive() {}

// receive waits for the next datagram from the backend and returns it in
// a pooled buffer, which the caller puts back. Without raw non-blocking
// reads the buffer is taken before waiting, so here every flow holds one
// while idle.
func (f *flow) receive() (*[]byte, int, error) {
	buf := f.bufs.get()
	n, err := f.conn.Read(*buf)
	if err != nil {
		f.bufs.put(buf)
		return nil, 0, err
	}
	return buf, n, nil
}
