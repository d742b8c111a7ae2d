package compress_test

import (
	"fmt"

	"github.com/weir-lb/weir/pkg/compress"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// A Proxy gains compression by embedding a Policy beside its balancer:
// the Policy's ResponseBodyFilter is the l7 phase that encodes bodies.
func Example() {
	type proxy struct {
		*l7.Balanced
		*compress.Policy
	}
	p := proxy{
		Balanced: &l7.Balanced{ /* LB: a load balancer */ },
		Policy:   &compress.Policy{Encodings: []compress.Encoding{compress.Brotli, compress.Gzip}, MinSize: 512},
	}
	var _ l7.ResponseBodyFilter = p
	srv := &l7.Server{Proxy: p}
	_ = srv // srv.Serve(listener)

	// What the Policy would choose for one exchange.
	req := &h1.Request{Method: []byte("GET"), Target: []byte("/")}
	req.Header.Add("Accept-Encoding", "gzip, br;q=0.9, zstd")
	resp := &h1.Response{Status: 200, ContentLength: 4096}
	resp.Header.Add("Content-Type", "application/json")
	fmt.Println(p.Choose(req, resp))
	resp.Header.Add("Cache-Control", "no-transform")
	fmt.Println(p.Choose(req, resp) == 0)
	// Output:
	// gzip
	// true
}
