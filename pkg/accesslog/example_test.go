package accesslog_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
)

// request is the Record the examples log.
func request() *accesslog.Record {
	return &accesslog.Record{
		Service:   "shop",
		Start:     time.Date(2026, time.March, 14, 15, 9, 26, 535_000_000, time.FixedZone("CET", 3600)),
		Client:    netip.MustParseAddrPort("192.0.2.10:51234"),
		Method:    []byte("GET"),
		Host:      []byte("shop.example"),
		Target:    []byte("/cart?item=42"),
		Proto:     "HTTP/1.1",
		Status:    200,
		BytesSent: 5120,
		Duration:  12_345 * time.Microsecond,
		Upstream:  "10.0.0.7:8080",
		Attempts:  1,
		RequestID: []byte("7f3a9c"),
		UserAgent: []byte("curl/8.5.0"),
	}
}

func ExampleParseFormat() {
	f, err := accesslog.ParseFormat("combined")
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(f.Append(nil, request()))
	// Output:
	// 192.0.2.10 - - [14/Mar/2026:15:09:26 +0100] "GET /cart?item=42 HTTP/1.1" 200 5120 "-" "curl/8.5.0"
}

// A template names the fields it wants; a client's bytes are escaped as
// nginx escapes them, so that they cannot end the line or forge a field.
func ExampleParseFormat_template() {
	f, err := accesslog.ParseFormat("$time_iso $client $method $host$path $status $duration $request_id")
	if err != nil {
		log.Fatal(err)
	}
	r := request()
	os.Stdout.Write(f.Append(nil, r))
	r.Target = []byte("/search?q=\"x\"\n")
	os.Stdout.Write(f.Append(nil, r))
	// Output:
	// 2026-03-14T15:09:26.535+01:00 192.0.2.10:51234 GET shop.example/cart?item=42 200 0.012345 7f3a9c
	// 2026-03-14T15:09:26.535+01:00 192.0.2.10:51234 GET shop.example/search?q=\x22x\x22\x0A 200 0.012345 7f3a9c
}

func ExampleParseFormat_json() {
	f, err := accesslog.ParseFormat("json")
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(f.Append(nil, request()))
	// Output:
	// {"time":"2026-03-14T15:09:26.535+01:00","service":"shop","route":"","client_ip":"192.0.2.10","client_port":51234,"method":"GET","host":"shop.example","path":"/cart?item=42","protocol":"HTTP/1.1","status":200,"bytes_received":0,"bytes_sent":5120,"duration":0.012345,"upstream":"10.0.0.7:8080","upstream_connect":0.000000,"upstream_first_byte":0.000000,"attempts":1,"tls_version":"","sni":"","request_id":"7f3a9c","user_agent":"curl/8.5.0","referer":"","reason":""}
}

func ExampleParseFormat_error() {
	_, err := accesslog.ParseFormat("$remote_addr $stauts")
	fmt.Println(errors.Is(err, accesslog.ErrBadFormat))
	_, err = accesslog.ParseFormat("$client $stauts")
	fmt.Println(err)
	// Output:
	// true
	// invalid access log format: unknown field "stauts" at byte 8; did you mean "status"? (fields: time_local, time_iso, client, client_ip, client_port, method, host, path, protocol, request, status, bytes_received, bytes_sent, duration, upstream, upstream_connect, upstream_first_byte, attempts, tls_version, sni, request_id, user_agent, referer, reason, service, route)
}

func ExampleOpen() {
	w, err := accesslog.Open("stdout", accesslog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	f, err := accesslog.ParseFormat("$service $status $request")
	if err != nil {
		log.Fatal(err)
	}
	w.Log(f, request()) // never blocks; the writer goroutine writes
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("written:", w.Written(), "dropped:", w.Dropped())
	// Output:
	// shop 200 GET /cart?item=42 HTTP/1.1
	// written: 1 dropped: 0
}

// Services that log to the same path share its Writer, each with its own
// format. ReopenAll follows logrotate's rename: the lines logged before
// it, written or not yet, go to the renamed file.
func ExampleWriters() {
	dir, err := os.MkdirTemp("", "accesslog")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "access.log")

	writers := accesslog.NewWriters(accesslog.Options{})
	shop, _ := writers.Get(path)
	api, _ := writers.Get(path)
	fmt.Println("shared:", shop == api)

	combined, _ := accesslog.ParseFormat("combined")
	short, _ := accesslog.ParseFormat("$service $status")
	shop.Log(combined, request())
	r := request()
	r.Service = "api"
	api.Log(short, r)

	os.Rename(path, path+".1") // logrotate
	if err := writers.ReopenAll(); err != nil {
		log.Fatal(err)
	}
	api.Log(short, r)
	if err := writers.CloseAll(); err != nil {
		log.Fatal(err)
	}
	rotated, _ := os.ReadFile(path + ".1")
	current, _ := os.ReadFile(path)
	fmt.Printf("rotated:\n%scurrent:\n%s", rotated, current)
	// Output:
	// shared: true
	// rotated:
	// 192.0.2.10 - - [14/Mar/2026:15:09:26 +0100] "GET /cart?item=42 HTTP/1.1" 200 5120 "-" "curl/8.5.0"
	// api 200
	// current:
	// api 200
}
