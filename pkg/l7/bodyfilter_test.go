package l7

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// upperProxy encodes bodies by upper-casing them, and records what the
// relay did with its encoder and how each request ended.
type upperProxy struct {
	*Balanced
	closeErr error

	mu    sync.Mutex
	enc   *upperEncoder
	ended chan error
}

func (p *upperProxy) ResponseBodyFilter(s *Session, resp *h1.Response, dst io.Writer) BodyEncoder {
	resp.Header.Set("X-Encoded", "upper")
	e := &upperEncoder{dst: dst, closeErr: p.closeErr}
	p.mu.Lock()
	p.enc = e
	p.mu.Unlock()
	return e
}

func (p *upperProxy) Log(s *Session, err error) { p.ended <- err }

func (p *upperProxy) encoder() *upperEncoder {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enc
}

type upperEncoder struct {
	dst              io.Writer
	pending          []byte
	writes, flushes  int
	closes, abandons int
	closeErr         error
}

func (e *upperEncoder) Write(p []byte) (int, error) {
	e.writes++
	e.pending = append(e.pending, bytes.ToUpper(p)...)
	return len(p), nil
}

func (e *upperEncoder) Flush() error {
	e.flushes++
	_, err := e.dst.Write(e.pending)
	e.pending = e.pending[:0]
	return err
}

func (e *upperEncoder) Close() error {
	e.closes++
	if e.closeErr != nil {
		return e.closeErr
	}
	_, err := io.WriteString(e.dst, "<END>")
	return err
}

func (e *upperEncoder) Abandon() { e.abandons++ }

// TestResponseBodyFilter runs bodies through an encoder: the body is
// re-framed, flushed per upstream read, closed before the trailers, and
// abandoned when the request fails, with the failure charged to the side
// that caused it.
func TestResponseBodyFilter(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/chunks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "hello ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "world")
		w.Header().Set("X-Sum", "11")
	})
	mux.HandleFunc("/sized", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "sized")
	})
	mux.HandleFunc("/cut", func(w http.ResponseWriter, r *http.Request) {
		c, bw, _ := w.(http.Hijacker).Hijack()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		bw.Flush()
		c.Close()
	})
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 32<<10)
		for range 2048 { // 64 MiB at most
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(bl)
	t.Cleanup(func() { hs.Close() })
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, bl.Addr().String())

	start := func(closeErr error) (*upperProxy, string) {
		p := &upperProxy{Balanced: &Balanced{LB: pool}, closeErr: closeErr, ended: make(chan error, 1)}
		return p, startProxy(t, &Server{Proxy: p})
	}

	t.Run("chunked with trailers", func(t *testing.T) {
		p, addr := start(nil)
		resp, err := newClient().Get("http://" + addr + "/chunks")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "HELLO WORLD<END>" {
			t.Fatalf("body %q, %v", body, err)
		}
		if resp.Header.Get("X-Encoded") != "upper" || resp.Trailer.Get("X-Sum") != "11" {
			t.Errorf("head %v, trailer %v", resp.Header, resp.Trailer)
		}
		if err := <-p.ended; err != nil {
			t.Fatal(err)
		}
		e := p.encoder()
		if e.flushes != e.writes || e.writes < 1 || e.closes != 1 || e.abandons != 0 {
			t.Errorf("writes %d, flushes %d, closes %d, abandons %d", e.writes, e.flushes, e.closes, e.abandons)
		}
	})

	t.Run("length-delimited body re-framed", func(t *testing.T) {
		p, addr := start(nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /sized HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || string(body) != "SIZED<END>" {
			t.Errorf("length %d, transfer encoding %v, body %q", resp.ContentLength, resp.TransferEncoding, body)
		}
		if err := <-p.ended; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("upstream cuts the body", func(t *testing.T) {
		p, addr := start(nil)
		resp, err := newClient().Get("http://" + addr + "/cut")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Error("the client read a complete body")
		}
		if err := <-p.ended; FaultOf(err) != UpstreamFault {
			t.Errorf("ended with %v (%s's fault), want the upstream's", err, FaultOf(err))
		}
		if e := p.encoder(); e.closes != 0 || e.abandons != 1 {
			t.Errorf("closes %d, abandons %d", e.closes, e.abandons)
		}
	})

	t.Run("encoder fails", func(t *testing.T) {
		p, addr := start(errors.New("encoder broke"))
		resp, err := newClient().Get("http://" + addr + "/sized")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Error("the client read a complete body")
		}
		if err := <-p.ended; FaultOf(err) != ProxyFault {
			t.Errorf("ended with %v (%s's fault), want the proxy's", err, FaultOf(err))
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		p, addr := start(nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := io.ReadFull(c, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := <-p.ended; FaultOf(err) != ClientFault {
			t.Errorf("ended with %v (%s's fault), want the client's", err, FaultOf(err))
		}
		if e := p.encoder(); e.closes != 0 || e.abandons != 1 {
			t.Errorf("closes %d, abandons %d", e.closes, e.abandons)
		}
	})
}
