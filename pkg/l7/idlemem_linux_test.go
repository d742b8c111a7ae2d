package l7

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkIdleConnectionMemory reports what one idle keep-alive client
// connection costs the server, in heap and goroutine-stack bytes, after
// it served a request and went quiet: the per-connection part of
// scripts/bench's idle10k figure. The server proxies to a backend in
// the same process, which holds one upstream connection. The clients are
// raw blocking sockets (plain file descriptors), so they add no Go
// objects to the count.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const conns = 2000
	srv := &Server{Proxy: benchBackend(b), IdleTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	for b.Loop() {
		before := settledMemory()
		fds := make([]int, 0, conns)
		for range conns {
			fd, err := rawRequest(addr)
			if err != nil {
				b.Fatal(err)
			}
			fds = append(fds, fd)
		}
		time.Sleep(3 * shedAfter) // every connection goes quiet
		after := settledMemory()
		b.ReportMetric(float64(int64(after.heap)-int64(before.heap))/conns, "heap-B/conn")
		b.ReportMetric(float64(int64(after.stack)-int64(before.stack))/conns, "stack-B/conn")
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

type memory struct{ heap, stack uint64 }

// settledMemory collects garbage and returns the live heap and the
// goroutine stacks in use.
func settledMemory() memory {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{heap: ms.HeapAlloc, stack: ms.StackInuse}
}

// rawRequest connects to addr with a blocking socket, sends one
// keep-alive request and reads its small response, and returns the
// still-open socket.
func rawRequest(addr netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if _, err := unix.Write(fd, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		unix.Close(fd)
		return -1, err
	}
	var buf [512]byte
	n := 0
	for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok\n")) {
		m, err := unix.Read(fd, buf[n:])
		if err != nil || m == 0 {
			unix.Close(fd)
			if err == nil {
				err = syscall.ECONNRESET
			}
			return -1, err
		}
		n += m
	}
	return fd, nil
}
