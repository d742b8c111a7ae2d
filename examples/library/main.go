// Command library is Pingora's load-balancer quick start rebuilt with
// weir's Go library: a round-robin pool with a TCP health check, and a
// proxy phase that rewrites the Host header sent upstream.
//
// Run it as is and it starts two toy backends of its own (and names a
// third, broken one) so that it works without a network:
//
//	go run ./examples/library
//	curl http://127.0.0.1:6188/
//
// Or point it at real upstreams over TLS, as Pingora's guide does:
//
//	go run ./examples/library -upstreams 1.1.1.1:443,1.0.0.1:443 -tls -sni one.one.one.one -host one.one.one.one
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"strings"
	"time"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// hostRewrite is a Proxy that load-balances like l7.Balanced and adds one
// phase of its own: every request reaches the upstream with Host set.
type hostRewrite struct {
	*l7.Balanced
	host string
}

// UpstreamRequestFilter runs just before the request is sent upstream.
func (p *hostRewrite) UpstreamRequestFilter(s *l7.Session, req *h1.Request) error {
	if p.host != "" {
		req.Header.Set("Host", p.host)
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:6188", "address to serve on")
	upstreams := flag.String("upstreams", "", "comma-separated host:port upstreams (default: two built-in backends and a broken one)")
	useTLS := flag.Bool("tls", false, "connect to the upstreams over TLS")
	sni := flag.String("sni", "", "TLS server name for the upstreams")
	host := flag.String("host", "", "Host header to send upstream")
	flag.Parse()

	addrs := strings.Split(*upstreams, ",")
	if *upstreams == "" {
		addrs = startToyBackends()
	}
	backends := make([]lb.Backend, 0, len(addrs))
	for _, a := range addrs {
		b, err := lb.NewBackend(a, 1)
		if err != nil {
			log.Fatal(err)
		}
		backends = append(backends, b)
	}
	pool, err := lb.NewStatic(backends...)
	if err != nil {
		log.Fatal(err)
	}
	upstream, err := lb.New(&lb.RoundRobin{}, lb.Options{
		Discovery:     pool,
		HealthCheck:   &lb.TCPCheck{Timeout: time.Second},
		CheckInterval: time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	go upstream.Run(context.Background()) // health checks in the background

	proxy := &hostRewrite{
		Balanced: &l7.Balanced{LB: upstream, Template: l7.Peer{TLS: *useTLS, SNI: *sni}},
		host:     *host,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("load balancing %v on http://%s", addrs, ln.Addr())
	log.Fatal((&l7.Server{Name: "quickstart", Proxy: proxy, MaxRetries: 2}).Serve(ln))
}

// startToyBackends serves "hello from a" and "hello from b" on two free
// loopback ports and returns them with a third, closed one.
func startToyBackends() []string {
	var addrs []string
	for _, name := range []string{"a", "b"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		go (&l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("hello from " + name + "\n")}}).Serve(ln)
		addrs = append(addrs, ln.Addr().String())
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	dead.Close()
	return append(addrs, dead.Addr().String())
}
