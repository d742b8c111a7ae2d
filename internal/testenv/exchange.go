package testenv

import (
	"bufio"
	"io"
	"net"
	"testing"
)

// FixedExchange dials addr and returns a function that sends req on the
// connection and reads the answer, for benchmarks of one request: the
// answer must be the same every time (a head, then bodyLen body bytes),
// so its length is learned from the first one and read exactly after
// that, and the client side allocates nothing. The connection closes
// when the benchmark ends.
func FixedExchange(tb testing.TB, addr string, req []byte, bodyLen int) func() {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	br := bufio.NewReaderSize(c, 4096)
	if _, err := c.Write(req); err != nil {
		tb.Fatal(err)
	}
	headLen := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			tb.Fatal(err)
		}
		headLen += len(line)
		if len(line) <= 2 {
			break
		}
	}
	if _, err := br.Discard(bodyLen); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, headLen+bodyLen)
	return func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			tb.Fatal(err)
		}
	}
}
