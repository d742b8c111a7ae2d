package route_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/route"
)

// serve runs srv on a free loopback port and returns its address.
func serve(srv *l7.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String()
}

// pool returns a round-robin proxy to the origin at addr.
func pool(addr string) l7.Proxy {
	static, _ := lb.NewStatic(lb.MustBackend(addr, 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: static})
	upstream.Update(context.Background())
	return &l7.Balanced{LB: upstream}
}

// Two sites and an API behind one listener: the API by path, with its
// prefix stripped and a header added; the shop by host; plain HTTP for
// the shop's checkout redirected to HTTPS. The origins here are weir's
// own Respond proxies.
func Example() {
	api := pool(serve(&l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("api\n")}}))
	shop := pool(serve(&l7.Server{Proxy: &l7.Respond{Status: 200, Body: []byte("shop\n")}}))

	routes := []route.Route{
		{
			Name:     "checkout-https",
			Match:    route.Match{Hosts: []string{"shop.example"}, Path: route.PathMatch{Kind: route.PathPrefix, Value: "/checkout"}},
			Redirect: &route.Redirect{Scheme: "https", Status: 308},
		},
		{
			Name:           "api",
			Match:          route.Match{Hosts: []string{"*.example"}, Path: route.PathMatch{Kind: route.PathPrefix, Value: "/api"}},
			Upstream:       "api",
			Rewrite:        &route.Rewrite{Prefix: "/api"},
			RequestHeaders: route.HeaderRules{Set: []route.HeaderValue{{Name: "X-Client", Value: route.MustTemplate("{client_ip}")}}},
			MaxRetries:     -1, // the server's
		},
		{Name: "shop", Match: route.Match{Hosts: []string{"shop.example"}}, Upstream: "shop", MaxRetries: -1},
	}
	table, err := route.New(routes, []l7.Proxy{nil, api, shop})
	if err != nil {
		panic(err)
	}
	front := &l7.Server{Proxy: table}
	addr := serve(front)
	defer front.Close()

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range []struct{ host, path string }{
		{"shop.example", "/"},
		{"www.example", "/api/users"},
		{"shop.example", "/checkout/cart?id=7"},
		{"other.example", "/"},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+u.path, nil)
		req.Host = u.host
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s%s: %d %s%s", u.host, u.path, resp.StatusCode, resp.Header.Get("Location"), body)
		if resp.Header.Get("Location") != "" {
			fmt.Println()
		}
	}
	fmt.Println("unmatched:", table.Unmatched())
	// Output:
	// shop.example/: 200 shop
	// www.example/api/users: 200 api
	// shop.example/checkout/cart?id=7: 308 https://shop.example/checkout/cart?id=7
	// other.example/: 404 weir: no route for this request
	// unmatched: 1
}
