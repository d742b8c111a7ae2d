package compress_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
)

// compressing is a Proxy that balances and compresses, as a route does.
type compressing struct {
	*l7.Balanced
	*compress.Policy
}

// page is a compressible body of a few blocks' worth.
var page = strings.Repeat("<p>weir compresses what the backend sends, as it arrives.</p>\n", 800)

// origin is a loopback backend. /page answers page with its length;
// /stream answers two chunks, the second only once next is closed.
type origin struct {
	addr  string
	next  chan struct{}
	first string
}

func startOrigin(t *testing.T, h2 bool) *origin {
	t.Helper()
	o := &origin{next: make(chan struct{}), first: strings.Repeat("first chunk, sent alone. ", 40)}
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(page)))
		io.WriteString(w, page)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, o.first)
		w.(http.Flusher).Flush()
		select {
		case <-o.next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, page)
	})
	var h http.Handler = mux
	if h2 {
		h = h2c.NewHandler(mux, &http2.Server{})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	o.addr = l.Addr().String()
	return o
}

// startProxy runs an l7.Server compressing with policy in front of addr.
func startProxy(t *testing.T, addr string, upstreamH2 bool, policy *compress.Policy) string {
	t.Helper()
	pool, err := lb.NewStatic(lb.MustBackend(addr, 1))
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := upstream.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := &l7.Balanced{LB: upstream}
	if upstreamH2 {
		b.Template.ALPN = l7.ALPNH2
	}
	srv := &l7.Server{Proxy: compressing{b, policy}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// clients are the downstream protocols, neither decompressing on its own.
func clients() []struct {
	name string
	c    *http.Client
} {
	return []struct {
		name string
		c    *http.Client
	}{
		{"h1 client", &http.Client{Transport: &http.Transport{DisableCompression: true}}},
		{"h2c client", &http.Client{Transport: &http2.Transport{
			AllowHTTP:          true,
			DisableCompression: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}}},
	}
}

// decoder returns the library's decoder of e over r.
func decoder(t *testing.T, e string, r io.Reader) io.Reader {
	t.Helper()
	switch e {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("no decoder for %q", e)
	return nil
}

func get(t *testing.T, ctx context.Context, c *http.Client, url, acceptEncoding string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestProxyCompresses sends a page through weir in every encoding, over
// each pairing of client and upstream protocol, and decodes it back with
// the encoding's own library.
func TestProxyCompresses(t *testing.T) {
	for _, upH2 := range []bool{false, true} {
		o := startOrigin(t, upH2)
		addr := startProxy(t, o.addr, upH2, &compress.Policy{})
		for _, cl := range clients() {
			for _, enc := range []string{"zstd", "br", "gzip"} {
				t.Run(fmt.Sprintf("upstream h2 %v/%s/%s", upH2, cl.name, enc), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					resp := get(t, ctx, cl.c, "http://"+addr+"/page", enc+", identity;q=0.5")
					if got := resp.Header.Get("Content-Encoding"); got != enc {
						t.Fatalf("Content-Encoding %q, want %q", got, enc)
					}
					if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
						t.Errorf("Content-Length sent: %d %q", resp.ContentLength, resp.Header.Get("Content-Length"))
					}
					if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
						t.Errorf("Vary %q", got)
					}
					if got := resp.Header.Get("ETag"); got != `W/"v1"` {
						t.Errorf("ETag %q, want the weak W/\"v1\"", got)
					}
					raw, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if len(raw) >= len(page)/4 {
						t.Errorf("%d bytes encoded to %d", len(page), len(raw))
					}
					body, err := io.ReadAll(decoder(t, enc, bytes.NewReader(raw)))
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					if string(body) != page {
						t.Errorf("decoded %d bytes, not the page's %d", len(body), len(page))
					}
				})
			}
			t.Run(fmt.Sprintf("upstream h2 %v/%s/identity", upH2, cl.name), func(t *testing.T) {
				resp := get(t, context.Background(), cl.c, "http://"+addr+"/page", "deflate")
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Header.Get("Content-Encoding") != "" || resp.ContentLength != int64(len(page)) ||
					string(body) != page || resp.Header.Get("ETag") != `"v1"` {
					t.Errorf("identity response changed: %q %d %q, %d bytes", resp.Header.Get("Content-Encoding"),
						resp.ContentLength, resp.Header.Get("ETag"), len(body))
				}
			})
		}
	}
}

// TestProxyStreams checks that each chunk the backend sends reaches the
// client, compressed and decodable, before the backend sends the next:
// the backend sends its second chunk only once the client has decoded
// the first.
func TestProxyStreams(t *testing.T) {
	for _, upH2 := range []bool{false, true} {
		for _, cl := range clients() {
			for _, enc := range []string{"zstd", "br", "gzip"} {
				t.Run(fmt.Sprintf("upstream h2 %v/%s/%s", upH2, cl.name, enc), func(t *testing.T) {
					o := startOrigin(t, upH2)
					addr := startProxy(t, o.addr, upH2, &compress.Policy{})
					release := sync.OnceFunc(func() { close(o.next) })
					t.Cleanup(release) // lets the backend's handler end after a failure
					// The deadline only turns a regression (the first chunk
					// held back) into a failure instead of a hang.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					resp := get(t, ctx, cl.c, "http://"+addr+"/stream", enc)
					if got := resp.Header.Get("Content-Encoding"); got != enc {
						t.Fatalf("Content-Encoding %q, want %q", got, enc)
					}
					dec := decoder(t, enc, resp.Body)
					first := make([]byte, len(o.first))
					if _, err := io.ReadFull(dec, first); err != nil {
						t.Fatalf("reading the first chunk before the second was sent: %v", err)
					}
					if string(first) != o.first {
						t.Fatalf("first chunk %q", first)
					}
					release()
					rest, err := io.ReadAll(dec)
					if err != nil {
						t.Fatal(err)
					}
					if string(rest) != page {
						t.Errorf("second chunk: %d bytes, want %d", len(rest), len(page))
					}
				})
			}
		}
	}
}
