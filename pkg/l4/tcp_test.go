package l4

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// Connections spread over three backends as Maglev places their keys:
// each connection reaches exactly the backend the pool picks for its
// client address and port, so every backend is reached in about its share.
func TestTCPSpreadsConnectionsLikeMaglev(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		for _, host := range loopbacks(t) {
			t.Run(host, func(t *testing.T) {
				weights := []int{1, 1, 2}
				var addrs []string
				for i := range weights {
					addrs = append(addrs, startTCPBackend(t, host, echoWithID(byte(i))).addr)
				}
				pool := newPool(t, nil, addrs, weights...)
				proxy := &TCPProxy{portable: portable, LB: pool}
				addr := serveTCP(t, proxy, host)

				const conns = 120
				counts := make([]int, len(addrs))
				for i := range conns {
					c := dialTCP(t, addr)
					id := readID(t, c)
					if got, want := addrs[id], expectedBackend(t, pool, clientAddrPort(c)); got != want {
						t.Fatalf("connection %d from %v reached %s, want %s", i, c.LocalAddr(), got, want)
					}
					counts[id]++
					msg := "hello " + itoa(i)
					if _, err := c.Write([]byte(msg)); err != nil {
						t.Fatal(err)
					}
					c.CloseWrite()
					if got, err := io.ReadAll(c); err != nil || string(got) != msg {
						t.Fatalf("echo = %q, %v; want %q", got, err, msg)
					}
					c.Close()
				}
				for i, n := range counts {
					share := float64(weights[i]) / 4
					mean, sd := conns*share, math.Sqrt(conns*share*(1-share))
					if n == 0 || math.Abs(float64(n)-mean) > 5*sd {
						t.Errorf("backend %d (weight %d) got %d of %d connections, want %.0f ± %.0f", i, weights[i], n, conns, mean, 5*sd)
					}
				}
				eventually(t, "every connection closed", func() bool { return proxy.Stats().ActiveConnections == 0 })
				if s := proxy.Stats(); s.Connections != conns || s.Drops != 0 || s.ConnectFailures != 0 {
					t.Errorf("stats %+v: want %d connections, no drops or failures", s, conns)
				}
				for _, a := range addrs {
					if n := inFlight(t, pool, a); n != 0 {
						t.Errorf("backend %s has %d in flight after every connection closed", a, n)
					}
				}
			})
		}
	})
}

func readID(t testing.TB, c net.Conn) int {
	t.Helper()
	var id [1]byte
	if _, err := io.ReadFull(c, id[:]); err != nil {
		t.Fatalf("read backend id: %v", err)
	}
	return int(id[0])
}

// A half-close travels through the proxy either way, and the other
// direction keeps working after it.
func TestTCPHalfClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		tests := []struct {
			name    string
			backend func(c net.Conn) error
			client  func(t *testing.T, c *net.TCPConn)
		}{
			{
				name: "client closes its side first",
				// The backend reads to EOF, then answers with what it got.
				backend: func(c net.Conn) error {
					got, err := io.ReadAll(c)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(c, "got %d bytes", len(got))
					return err
				},
				client: func(t *testing.T, c *net.TCPConn) {
					if _, err := c.Write(make([]byte, 100_000)); err != nil {
						t.Fatal(err)
					}
					if err := c.CloseWrite(); err != nil {
						t.Fatal(err)
					}
					if reply, err := io.ReadAll(c); err != nil || string(reply) != "got 100000 bytes" {
						t.Fatalf("reply = %q, %v", reply, err)
					}
				},
			},
			{
				name: "backend closes its side first",
				// The backend greets, half-closes, then reads the request.
				backend: func(c net.Conn) error {
					io.WriteString(c, "hello\n")
					c.(*net.TCPConn).CloseWrite()
					got, err := io.ReadAll(c)
					if err != nil || string(got) != "still talking" {
						return fmt.Errorf("backend read %q, %v after its half-close", got, err)
					}
					return nil
				},
				client: func(t *testing.T, c *net.TCPConn) {
					if greeting, err := io.ReadAll(c); err != nil || string(greeting) != "hello\n" {
						t.Fatalf("greeting = %q, %v", greeting, err)
					}
					if _, err := io.WriteString(c, "still talking"); err != nil {
						t.Fatalf("write after the backend's half-close: %v", err)
					}
					c.CloseWrite()
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				backendDone := make(chan error, 1)
				backend := startTCPBackend(t, "127.0.0.1", func(c net.Conn) { backendDone <- tt.backend(c) })
				proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{backend.addr})}
				c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
				tt.client(t, c)
				select {
				case err := <-backendDone:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(testTimeout):
					t.Fatal("the backend never finished")
				}
				// The proxy closes the connection once both sides finished.
				eventually(t, "the proxied connection to end", func() bool { return proxy.Stats().ActiveConnections == 0 })
			})
		}
	})
}

// A backend that refuses connections costs a retry on another backend;
// once health checks mark it down, no connection tries it at all.
func TestTCPSkipsRefusingBackend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		for _, host := range loopbacks(t) {
			t.Run(host, func(t *testing.T) {
				refusing := refusingAddr(t, host)
				live := startTCPBackend(t, host, echoWithID(1))
				check := &switchCheck{}
				pool := newPool(t, check, []string{refusing, live.addr})
				proxy := &TCPProxy{portable: portable, LB: pool, MaxRetries: 1}
				addr := serveTCP(t, proxy, host)

				// Connect until some clients' first choice was the refusing
				// backend; each of those must cost exactly one failure.
				wantFailures := 0
				for i := 0; i < 200 && wantFailures < 3; i++ {
					c := dialTCP(t, addr)
					if id := readID(t, c); id != 1 {
						t.Fatalf("connection reached backend %d", id)
					}
					if expectedBackend(t, pool, clientAddrPort(c)) == refusing {
						wantFailures++
					}
					c.Close()
				}
				if wantFailures < 3 {
					t.Fatal("no client mapped to the refusing backend in 200 connections")
				}
				if s := proxy.Stats(); s.ConnectFailures != uint64(wantFailures) || s.Drops != 0 {
					t.Fatalf("stats %+v: want %d connect failures, no drops", s, wantFailures)
				}

				check.setDown(t, pool, refusing, true)
				for range 30 {
					c := dialTCP(t, addr)
					if id := readID(t, c); id != 1 {
						t.Fatalf("connection reached backend %d", id)
					}
					c.Close()
				}
				if s := proxy.Stats(); s.ConnectFailures != uint64(wantFailures) {
					t.Fatalf("%d connect failures after the refusing backend was marked down, want still %d", s.ConnectFailures, wantFailures)
				}
			})
		}
	})
}

// A connection that no backend can take is closed, counted, and logged
// with every backend tried and why; a backend is never tried twice.
func TestTCPUnservableConnection(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		refusing := refusingAddr(t, "127.0.0.1")
		tests := []struct {
			name         string
			backends     []string
			wantFailures uint64
			wantNoBack   uint64
			wantLog      []string
		}{
			{"every backend refuses", []string{refusing}, 1, 0, []string{"cannot connect to backend", refusing, "refused"}},
			{"no backend at all", nil, 0, 1, []string{"no usable backend"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var logs testenv.Buffer
				proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, tt.backends), MaxRetries: 3, Logger: newTestLogger(&logs)}
				c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
				if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
					t.Fatalf("read = %d, %v; want the connection closed", n, err)
				}
				eventually(t, "the connection to end", func() bool { return proxy.Stats().ActiveConnections == 0 })
				s := proxy.Stats()
				if s.Drops != 1 || s.ConnectFailures != tt.wantFailures || s.NoBackend != tt.wantNoBack {
					t.Errorf("stats %+v: want 1 drop, %d connect failures, %d without backend", s, tt.wantFailures, tt.wantNoBack)
				}
				for _, w := range tt.wantLog {
					if !strings.Contains(logs.String(), w) {
						t.Errorf("log lacks %q:\n%s", w, logs.String())
					}
				}
			})
		}
	})
}

// 64 MiB go through the proxy and back intact.
func TestTCPLargeTransfer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		const size = 64 << 20
		backend := startTCPBackend(t, "127.0.0.1", echo)
		proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{backend.addr})}
		c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
		c.SetDeadline(time.Now().Add(60 * time.Second))

		sent := make(chan [sha256.Size]byte, 1)
		go func() {
			h := sha256.New()
			w := io.MultiWriter(c, h)
			rng := rand.NewChaCha8([32]byte{1})
			if _, err := io.CopyN(w, rng, size); err != nil {
				t.Errorf("send: %v", err)
			}
			c.CloseWrite()
			sent <- [sha256.Size]byte(h.Sum(nil))
		}()
		h := sha256.New()
		n, err := io.Copy(h, bufio.NewReaderSize(c, 1<<20))
		if err != nil || n != size {
			t.Fatalf("received %d bytes, %v; want %d", n, err, size)
		}
		if want := <-sent; [sha256.Size]byte(h.Sum(nil)) != want {
			t.Fatal("the bytes came back altered")
		}
		eventually(t, "the connection to end", func() bool { return proxy.Stats().ActiveConnections == 0 })
		if s := proxy.Stats(); s.BytesIn != size || s.BytesOut != size {
			t.Errorf("stats count %d bytes in, %d out; want %d each", s.BytesIn, s.BytesOut, size)
		}
	})
}

// A connection closes IdleTimeout after its last byte, on both sides,
// and not before, however few bytes keep it alive.
func TestTCPIdleTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		if runtime.GOOS != "linux" {
			t.Skip("trickles are seen through Linux TCP_INFO counters")
		}
		const idle = 300 * time.Millisecond
		backendDone := make(chan error, 1)
		backend := startTCPBackend(t, "127.0.0.1", func(c net.Conn) {
			// Echo byte by byte, and report how the connection ended.
			_, err := io.CopyBuffer(c, c, make([]byte, 1))
			backendDone <- err
		})
		proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{backend.addr}), IdleTimeout: idle}
		c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))

		// A byte every idle/6 for three timeouts keeps the connection open,
		// though no copy chunk completes.
		tick := time.NewTicker(idle / 6)
		defer tick.Stop()
		buf := make([]byte, 1)
		for i := range 18 {
			<-tick.C
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte(i) {
				t.Fatalf("echo %d = %d, %v: the connection closed while active", i, buf[0], err)
			}
		}
		tick.Stop()
		last := time.Now()

		if n, err := c.Read(buf); n != 0 || err == nil {
			t.Fatalf("read = %d, %v; want the connection closed", n, err)
		}
		if waited := time.Since(last); waited < idle {
			t.Errorf("closed %v after the last byte, before the idle timeout %v", waited, idle)
		}
		select {
		case <-backendDone:
		case <-time.After(testTimeout):
			t.Fatal("the backend side stayed open")
		}
		eventually(t, "the connection to end", func() bool { return proxy.Stats().ActiveConnections == 0 })
		if s := proxy.Stats(); s.IdleTimeouts != 1 {
			t.Errorf("IdleTimeouts = %d, want 1", s.IdleTimeouts)
		}
	})
}

// Shutdown stops accepting at once, waits for a live connection to end,
// and then returns nil; when its context ends first, it cuts the rest.
func TestTCPShutdown(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		tests := []struct {
			name    string
			finish  func(c *net.TCPConn) // ends the client's side, or not
			ctx     func() (context.Context, context.CancelFunc)
			wantErr error
		}{
			{
				name:   "waits for the connection",
				finish: func(c *net.TCPConn) { c.CloseWrite() },
				ctx: func() (context.Context, context.CancelFunc) {
					return context.WithTimeout(context.Background(), testTimeout)
				},
			},
			{
				name:   "cuts it when the context ends",
				finish: func(*net.TCPConn) {},
				ctx: func() (context.Context, context.CancelFunc) {
					return context.WithTimeout(context.Background(), 200*time.Millisecond)
				},
				wantErr: context.DeadlineExceeded,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				backend := startTCPBackend(t, "127.0.0.1", echo)
				proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{backend.addr})}
				addr := serveTCP(t, proxy, "127.0.0.1")
				c := dialTCP(t, addr)
				roundTrip(t, c, "before")

				ctx, cancel := tt.ctx()
				defer cancel()
				shut := make(chan error, 1)
				go func() { shut <- proxy.Shutdown(ctx) }()
				eventually(t, "the listener to close", func() bool {
					nc, err := net.Dial("tcp", addr)
					if err == nil {
						nc.Close()
					}
					return err != nil
				})
				roundTrip(t, c, "during")
				select {
				case err := <-shut:
					t.Fatalf("Shutdown returned %v while a connection was open", err)
				default:
				}

				tt.finish(c)
				if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("client read: %v", err)
				}
				select {
				case err := <-shut:
					if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
						t.Fatalf("Shutdown = %v, want %v", err, tt.wantErr)
					}
				case <-time.After(testTimeout):
					t.Fatal("Shutdown did not return")
				}
				if s := proxy.Stats(); s.ActiveConnections != 0 {
					t.Errorf("%d connections left after Shutdown", s.ActiveConnections)
				}
			})
		}
	})
}

func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

// Close cuts live connections, releases their backends, makes Serve
// return ErrProxyClosed, and refuses later Serves.
func TestTCPClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		backend := startTCPBackend(t, "127.0.0.1", echo)
		pool := newPool(t, nil, []string{backend.addr})
		proxy := &TCPProxy{portable: portable, LB: pool}
		c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
		roundTrip(t, c, "hi")
		if n := inFlight(t, pool, backend.addr); n != 1 {
			t.Fatalf("in flight = %d during the connection, want 1", n)
		}
		proxy.Close()
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("read = %d, %v after Close; want the connection closed", n, err)
		}
		if n := inFlight(t, pool, backend.addr); n != 0 {
			t.Errorf("in flight = %d after Close, want 0", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := proxy.Serve(l); !errors.Is(err, ErrProxyClosed) {
			t.Errorf("Serve after Close = %v, want ErrProxyClosed", err)
		}
	})
}

func TestTCPServeWithoutLB(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := (&TCPProxy{}).Serve(l); !errors.Is(err, ErrNoSelector) {
		t.Errorf("Serve = %v, want ErrNoSelector", err)
	}
}

// flakyListener fails its first accepts as a process out of descriptors
// does.
type flakyListener struct {
	net.Listener
	failures int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures > 0 {
		l.failures--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// Running out of descriptors pauses accepting; it does not stop Serve.
func TestTCPAcceptBacksOffOnEMFILE(t *testing.T) {
	backend := startTCPBackend(t, "127.0.0.1", echo)
	var logs testenv.Buffer
	proxy := &TCPProxy{LB: newPool(t, nil, []string{backend.addr}), Logger: newTestLogger(&logs)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(&flakyListener{Listener: l, failures: 3}) }()
	c := dialTCP(t, l.Addr().String())
	roundTrip(t, c, "served after EMFILE")
	proxy.Close()
	if err := <-served; !errors.Is(err, ErrProxyClosed) {
		t.Errorf("Serve = %v, want ErrProxyClosed", err)
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("the accept failure was not logged:\n%s", logs.String())
	}
}
