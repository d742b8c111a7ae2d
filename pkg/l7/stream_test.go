package l7

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

// testPKI is a throwaway CA and the certificates it signs.
type testPKI struct {
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	roots *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weir test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &testPKI{ca: ca, key: key, roots: roots}
}

func (p *testPKI) cert(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSBothWays terminates TLS from the client (certificate chosen by
// SNI) and originates TLS to the backend with its own SNI and Host, which
// the backend records.
func TestTLSBothWays(t *testing.T) {
	pki := newTestPKI(t)
	backend := startOriginTLS(t, hello("tls backend"), &tls.Config{
		Certificates: []tls.Certificate{pki.cert(t, "backend.internal")},
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend.addr)
	srv := &Server{Proxy: &Balanced{
		LB:       pool,
		Host:     "app.internal",
		Template: Peer{TLS: true, SNI: "backend.internal", RootCAs: pki.roots},
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "one.example"), pki.cert(t, "two.example")}}
	go srv.Serve(tls.NewListener(ln, front))
	t.Cleanup(func() { srv.Close() })

	for _, name := range []string{"one.example", "two.example"} {
		c := &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pki.roots, ServerName: name},
		}, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatalf("GET with SNI %s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from tls backend" {
			t.Fatalf("body %q", body)
		}
		if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != name {
			t.Fatalf("client with SNI %s got the certificate for %s", name, got)
		}
	}
	backend.mu.Lock()
	sni := backend.sni
	backend.mu.Unlock()
	if sni != "backend.internal" {
		t.Fatalf("backend saw SNI %q, want backend.internal", sni)
	}
	r := backend.last()
	if r.Host != "app.internal" || r.Header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("backend saw Host %q and X-Forwarded-Proto %q", r.Host, r.Header.Get("X-Forwarded-Proto"))
	}
}

func TestTLSUpstreamVerificationFails(t *testing.T) {
	pki := newTestPKI(t)
	backend := startOriginTLS(t, hello("x"), &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "backend.internal")}})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend.addr)
	// No RootCAs: the system roots do not trust the test CA.
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{TLS: true, SNI: "backend.internal"}}})
	if code, _ := get(t, newClient(), "http://"+addr+"/"); code != 502 {
		t.Fatalf("untrusted upstream certificate gave %d, want 502", code)
	}
	if n := backend.requests.Load(); n != 0 {
		t.Fatalf("%d requests reached an upstream whose certificate failed verification", n)
	}
}

// TestWebSocketTunnel upgrades through the proxy and echoes frames both
// ways after the 101.
func TestWebSocketTunnel(t *testing.T) {
	echo := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		rw.Flush()
		io.Copy(conn, rw) // echo every byte back
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, echo.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("got %d with Upgrade %q, want 101 websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	for i := range 5 {
		msg := fmt.Sprintf("frame %d %s", i, strings.Repeat("x", i*1000))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("reading echo %d: %v", i, err)
		}
		if string(got) != msg {
			t.Fatalf("echo %d differs", i)
		}
	}
}

// patternReader yields n bytes of a repeating pattern without holding
// them in memory.
type patternReader struct {
	left int64
	off  int
}

// pattern has a length prime to every buffer size, so that a byte moved
// or dropped anywhere changes the hash.
var pattern = bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789!"), 1000)

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	n := 0
	for n < len(b) {
		c := copy(b[n:], pattern[p.off:])
		n += c
		p.off = (p.off + c) % len(pattern)
	}
	p.left -= int64(n)
	return n, nil
}

func hashOf(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return fmt.Sprintf("%x", h.Sum(nil)), n, err
}

// TestLargeBodiesStreamInBoundedMemory moves 256 MiB up and 256 MiB
// down through the proxy, with and without a declared length, and checks
// the bytes arrive intact while the heap stays far below the body size.
func TestLargeBodiesStreamInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB through loopback")
	}
	const size = 256 << 20
	want, _, _ := hashOf(&patternReader{left: size})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			got, n, err := hashOf(r.Body)
			if err != nil || n != size || got != want {
				http.Error(w, fmt.Sprintf("upload: %d bytes, err %v, hash ok %v", n, err, got == want), 500)
				return
			}
			io.WriteString(w, "upload ok")
			return
		}
		if r.URL.Query().Get("length") == "known" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
		}
		io.Copy(w, &patternReader{left: size})
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	c := newClient()
	c.Timeout = 60 * time.Second

	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()

	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"declared length", false}, {"chunked", true}} {
		var body io.Reader = &patternReader{left: size}
		req, _ := http.NewRequest("POST", "http://"+addr+"/up", body)
		if !tc.chunked {
			req.ContentLength = size
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("upload %s: %v", tc.name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("upload %s: %d %s", tc.name, resp.StatusCode, msg)
		}
	}
	for _, q := range []string{"known", "unknown"} {
		resp, err := c.Get("http://" + addr + "/down?length=" + q)
		if err != nil {
			t.Fatalf("download (%s length): %v", q, err)
		}
		got, n, err := hashOf(resp.Body)
		resp.Body.Close()
		if err != nil || n != size || got != want {
			t.Fatalf("download (%s length): %d bytes, err %v, intact %v", q, n, err, got == want)
		}
	}
	close(stop)
	<-sampled
	// The test process holds the client, the proxy and the origin; all
	// stream. 64 MiB is a quarter of one body.
	if peak > 64<<20 {
		t.Fatalf("heap in use peaked at %d MiB while streaming 256 MiB bodies", peak>>20)
	}
}

// TestChunkedTrailersPassThrough sends a chunked request with a trailer
// upstream and relays a chunked response with a trailer back.
func TestChunkedTrailersPassThrough(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		w.Write(bytes.ToUpper(body))
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "resp-"+r.Trailer.Get("X-Req-Sum"))
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	req, _ := http.NewRequest("POST", "http://"+addr+"/", io.MultiReader(strings.NewReader("hello "), strings.NewReader("trailers")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Req-Sum": {"42"}}
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HELLO TRAILERS" {
		t.Fatalf("body %q", body)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "resp-42" {
		t.Fatalf("response trailer %q, want resp-42 (the request trailer relayed up, the response trailer down)", got)
	}
}
