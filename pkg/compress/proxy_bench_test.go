package compress_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// BenchmarkCompressedRequest is pkg/l7's BenchmarkProxiedRequest with a
// 4 KiB HTML list, compressed in each encoding, and not ("identity").
func BenchmarkCompressedRequest(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 4096; i++ {
		fmt.Fprintf(&sb, "<li id=\"item-%d\"><a href=\"/items/%x\">entry %d</a> %d</li>\n", i, i*7919, i*i, i*31337)
	}
	body := []byte(sb.String()[:4096])
	var hdr h1.Header
	hdr.Add("Content-Type", "text/html")
	backend := &l7.Server{Proxy: &l7.Respond{Status: 200, Header: hdr, Body: body}}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go backend.Serve(bl)
	b.Cleanup(func() { backend.Close() })
	pool, _ := lb.NewStatic(lb.MustBackend(bl.Addr().String(), 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	upstream.Update(context.Background())
	proxy := &l7.Server{Proxy: compressing{&l7.Balanced{LB: upstream}, &compress.Policy{}}}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go proxy.Serve(pl)
	b.Cleanup(func() { proxy.Close() })

	for _, enc := range []string{"identity", "zstd", "br", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			req := []byte("GET / HTTP/1.1\r\nHost: bench.example\r\nAccept-Encoding: " + enc + "\r\n\r\n")
			n := bodyBytes(b, pl.Addr().String(), req)
			exchange := testenv.FixedExchange(b, pl.Addr().String(), req, n)
			b.ReportAllocs()
			for b.Loop() {
				exchange()
			}
			b.ReportMetric(float64(n), "wire-bytes")
		})
	}
}

// bodyBytes returns how many bytes follow the head of the answer to req:
// the body with its chunked framing.
func bodyBytes(b *testing.B, addr string, req []byte) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Write(req)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	if resp.ContentLength >= 0 {
		return int(resp.ContentLength)
	}
	// Count the chunked framing as it arrives: re-read the raw bytes.
	var raw strings.Builder
	tr := io.TeeReader(br, &raw)
	cr := bufio.NewReader(tr)
	for {
		line, err := cr.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		var size int
		fmt.Sscanf(line, "%x", &size)
		if size == 0 {
			cr.ReadString('\n')
			break
		}
		cr.Discard(size + 2)
	}
	return raw.Len() - cr.Buffered()
}
