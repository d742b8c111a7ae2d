package route

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
)

// benchRoutes returns hosts × paths upstream routes: host h, prefix
// "/api/v{p}" for each p, as a table of many sites and APIs has them.
// Every route has a name, as configured ones do.
func benchRoutes(hosts, paths int, wildcard bool) []Route {
	var routes []Route
	for h := range hosts {
		host := fmt.Sprintf("host%d.example.com", h)
		if wildcard {
			host = fmt.Sprintf("*.site%d.example.com", h)
		}
		for p := range paths {
			routes = append(routes, Route{
				Name:       fmt.Sprintf("h%d-p%d", h, p),
				Match:      Match{Hosts: []string{host}, Path: PathMatch{Kind: PathPrefix, Value: fmt.Sprintf("/api/v%d", p)}},
				Upstream:   "pool",
				MaxRetries: -1,
			})
		}
	}
	return routes
}

// BenchmarkRoute measures one lookup in a table of 10,000 routes over
// 1,000 hosts: host lower-casing and port stripping, the path check,
// the host map and the path trie. The requests cycle over 1,024 hosts
// and paths, so that the lookups do not all read the same part of the
// table; the request itself is one Session whose host and target change,
// as a request head just parsed is in the cache.
func BenchmarkRoute(b *testing.B) {
	const hosts, paths, requests = 1000, 10, 1024
	cases := []struct {
		name     string
		wildcard bool
		target   func(i int) (host, target string)
	}{
		{"exact-host-prefix", false, func(i int) (string, string) {
			return fmt.Sprintf("Host%d.example.com:443", i*7%hosts), fmt.Sprintf("/api/v%d/users/%d?page=2", i%paths, i)
		}},
		{"wildcard-host-prefix", true, func(i int) (string, string) {
			return fmt.Sprintf("www.site%d.example.com", i*7%hosts), fmt.Sprintf("/api/v%d/users/%d", i%paths, i)
		}},
		{"normalised-path", false, func(i int) (string, string) {
			return fmt.Sprintf("host%d.example.com", i*7%hosts), fmt.Sprintf("/api/x/../v%d/./users/%d", i%paths, i)
		}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			tbl := mustTable(b, benchRoutes(hosts, paths, bc.wildcard)...)
			s := session("GET", "/", "", "User-Agent", "bench", "Accept", "*/*")
			var hostOf, targetOf [requests][]byte
			for i := range requests {
				host, target := bc.target(i)
				hostOf[i], targetOf[i] = []byte(host), []byte(target)
				s.Req.Host, s.Req.Target = hostOf[i], targetOf[i]
				if e, _, err := tbl.find(s); e == nil || err != nil {
					b.Fatalf("%s %s: no route (%v)", host, target, err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.Req.Host, s.Req.Target = hostOf[i%requests], targetOf[i%requests]
				if e, _, _ := tbl.find(s); e == nil {
					b.Fatal("no route")
				}
				i++
			}
		})
	}
}

// BenchmarkProxiedRequestRouted is l7's BenchmarkProxiedRequest through
// a Table of 1,000 routes (100 hosts × 10 paths) whose matching route
// sets two request header fields, one of them templated.
func BenchmarkProxiedRequestRouted(b *testing.B) {
	backend := benchBackend(b)
	routes := benchRoutes(100, 10, false)
	proxies := make([]l7.Proxy, len(routes))
	for i := range routes {
		proxies[i] = backend
	}
	routes[427].RequestHeaders = HeaderRules{Set: []HeaderValue{
		{Name: "X-Route", Value: MustTemplate("bench")},
		{Name: "X-Client-Ip", Value: MustTemplate("{client_ip}")},
	}}
	tbl, err := New(routes, proxies)
	if err != nil {
		b.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	proxy := &l7.Server{Proxy: tbl}
	go proxy.Serve(pl)
	defer proxy.Close()

	req := []byte("GET /api/v7/bench HTTP/1.1\r\nHost: host42.example.com\r\nUser-Agent: weir-bench\r\nAccept: */*\r\n\r\n")
	exchange := testenv.FixedExchange(b, pl.Addr().String(), req, len("ok\n"))
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}

// benchBackend starts weir's Respond server answering "ok\n" on loopback
// until the benchmark ends, and returns a round-robin proxy to it.
func benchBackend(b *testing.B) *l7.Balanced {
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backend := &l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("ok\n")}}
	go backend.Serve(bl)
	b.Cleanup(func() { backend.Close() })
	pool, _ := lb.NewStatic(lb.MustBackend(bl.Addr().String(), 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool})
	upstream.Update(context.Background())
	return &l7.Balanced{LB: upstream}
}
