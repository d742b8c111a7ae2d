package l4

import "net"

// copyChunk is how much one copy call may move before the byte counters
// are updated: Go's largest splice(2) request, so a chunk costs no extra
// system call.
const copyChunk = 1 << 20

// socketActivity returns the bytes the kernel has received on a TCP
// socket plus those its peer acknowledged (tcpi_bytes_received and
// tcpi_bytes_acked), which grow with every byte that moves either way,
// even in the middle of a splice. It returns 0 for other sockets, and on
// kernels before 4.1, which do not report these counters.
func socketActivity(c net.Conn) uint64 {
	tc, ok := tcpSocket(c)
	if !ok {
		return 0
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var total uint64
	_ = raw.Control(func(fd uintptr) { total = fdActivity(int(fd)) })
	return total
}
