package admin

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// fakeListener is a listener at any address that accepts nothing, for
// the checks Serve makes before it accepts.
type fakeListener struct {
	addr   net.Addr
	closed bool
}

func (l *fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l *fakeListener) Close() error              { l.closed = true; return nil }
func (l *fakeListener) Addr() net.Addr            { return l.addr }

// TestServeRefusesExposure checks that Serve will not expose the
// endpoint to other hosts without a token, nor trust a remote address as
// loopback.
func TestServeRefusesExposure(t *testing.T) {
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9901}
	loop := &net.TCPAddr{IP: net.IPv6loopback, Port: 9901}
	tests := []struct {
		name     string
		addr     net.Addr
		loopback bool
		token    bool
		wantErr  string
	}{
		{"remote claimed loopback", remote, true, true, "serve it with loopback=false"},
		{"remote without a token", remote, false, false, "needs a token (admin.token_file)"},
		{"loopback served as remote without a token", loop, false, false, "needs a token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{State: newFake()}
			if tt.token {
				opts.Token = []byte(testToken)
			}
			h, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			l := &fakeListener{addr: tt.addr}
			err = h.Serve(l, tt.loopback)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Serve: %v, want an error saying %q", err, tt.wantErr)
			}
			if !l.closed {
				t.Error("Serve left the listener open")
			}
		})
	}
}

// TestShutdown checks that Shutdown stops every listener, and that a
// Serve after it returns at once.
func TestShutdown(t *testing.T) {
	h, err := New(Options{State: newFake(), Logger: options(io.Discard).Logger})
	if err != nil {
		t.Fatal(err)
	}
	var done []chan error
	var addrs []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c := make(chan error, 1)
		go func() { c <- h.Serve(l, true) }()
		done, addrs = append(done, c), append(addrs, l.Addr().String())
	}
	for _, addr := range addrs {
		if status, _, err := getStatus(addr); err != nil || status != 200 {
			t.Fatalf("GET %s/status: %d %v", addr, status, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range done {
		select {
		case err := <-c:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve %d: %v", i, err)
			}
		case <-ctx.Done():
			t.Fatalf("Serve %d still runs after Shutdown", i)
		}
		if _, _, err := getStatus(addrs[i]); err == nil {
			t.Errorf("%s still answers after Shutdown", addrs[i])
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Serve(l, true); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("Serve after Shutdown left its listener open")
	}
}

// getStatus GETs /status from addr on a connection of its own.
func getStatus(addr string) (int, string, error) {
	resp, err := client.Get("http://" + addr + "/status")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestSlowClients checks the limits that keep a client from holding the
// endpoint: a head that never ends is cut off at the header timeout, and
// a huge one is refused.
func TestSlowClients(t *testing.T) {
	var log testenv.Buffer
	const headerTimeout = 200 * time.Millisecond
	e := serve(t, options(&log), &log, true, func(h *Handler) { h.timeouts.readHeader = headerTimeout })

	// The server's clock starts when it takes the connection, which may
	// be before Dial returns here: start before dialling.
	start := time.Now()
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /status HTTP/1.1\r\nHost: localhost\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
	if took := time.Since(start); took < headerTimeout {
		t.Errorf("closed after %v, before the header timeout", took)
	}

	resp, _ := raw(t, e.addr, "GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: "+strings.Repeat("x", 2*maxHeaderBytes)+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a %d-byte head: status %d, want 431", 2*maxHeaderBytes, resp.StatusCode)
	}
}

// acceptSignal is a listener that reports each connection it accepted.
type acceptSignal struct {
	net.Listener
	accepted chan net.Conn
}

func (l acceptSignal) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- c
	}
	return c, err
}

// TestShutdownAnswersAcceptedConnections checks that Shutdown, which a
// draining weir runs while its successor accepts on the same handed-over
// socket, answers every connection it had already accepted: one whose
// request arrives only once Shutdown has begun is answered (with
// Connection: close), not closed unanswered, which its client would see
// as EOF; a keep-alive connection idle between requests is closed, and
// Shutdown does not wait for it.
func TestShutdownAnswersAcceptedConnections(t *testing.T) {
	const request = "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n"
	tests := []struct {
		name string
		// before is what the client sends before Shutdown: nothing, or
		// a whole request, which leaves the connection idle.
		before   string
		after    string // sent once Shutdown has begun
		wantCode int    // of the response to after; 0: none, the connection closes
	}{
		{"accepted, request once Shutdown began", "", request, http.StatusOK},
		{"idle keep-alive connection", request, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Options{State: newFake(), Logger: options(io.Discard).Logger})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := acceptSignal{Listener: ln, accepted: make(chan net.Conn, 1)}
			served := make(chan error, 1)
			go func() { served <- h.Serve(l, true) }()
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if tt.before != "" {
				readResponse(t, c, br, tt.before, http.StatusOK, false)
			}
			select {
			case <-l.accepted:
			case <-time.After(10 * time.Second):
				t.Fatal("the server did not accept the connection")
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- h.Shutdown(ctx) }()
			// Serve returns once Shutdown stopped accepting.
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				t.Fatalf("Serve: %v, want http.ErrServerClosed", err)
			}
			if tt.wantCode != 0 {
				readResponse(t, c, br, tt.after, tt.wantCode, true)
			}
			if err := <-shut; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if n, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after Shutdown the connection reads %q, %v; want it closed (EOF)", n, err)
			}
		})
	}
}

// readResponse sends req on c and reads the response from br, checking
// its status and whether it announces that the connection closes.
func readResponse(t *testing.T, c net.Conn, br *bufio.Reader, req string, wantCode int, wantClose bool) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantCode || resp.Close != wantClose {
		t.Fatalf("response to %q: %d with close=%v, want %d with close=%v", req, resp.StatusCode, resp.Close, wantCode, wantClose)
	}
}
