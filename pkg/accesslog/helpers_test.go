package accesslog

import (
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// testStart is the Start of the test records: a fixed instant in a fixed
// zone, so that golden lines do not depend on the machine's time zone.
var testStart = time.Date(2026, time.March, 14, 15, 9, 26, 535_000_000, time.FixedZone("CET", 3600))

// sampleRecord returns a request that went well over TLS, with every
// field set.
func sampleRecord() *Record {
	return &Record{
		Service:       "shop",
		Route:         "cart",
		Start:         testStart,
		Client:        netip.MustParseAddrPort("192.0.2.10:51234"),
		Method:        []byte("GET"),
		Host:          []byte("shop.example"),
		Target:        []byte("/cart?item=42"),
		Proto:         "HTTP/1.1",
		Status:        200,
		BytesReceived: 17,
		BytesSent:     5120,
		Duration:      12_345_678 * time.Nanosecond,
		Upstream:      "10.0.0.7:8080",
		Connect:       1200 * time.Microsecond,
		FirstByte:     10 * time.Millisecond,
		Attempts:      1,
		TLSVersion:    "TLSv1.3",
		SNI:           "shop.example",
		RequestID:     []byte("7f3a9c"),
		UserAgent:     []byte("Mozilla/5.0 (X11; Linux x86_64)"),
		Referer:       []byte("https://shop.example/"),
	}
}

// quietOptions are Options whose error log discards, for tests that
// provoke write failures.
func quietOptions() Options {
	return Options{ErrorLog: slog.New(slog.DiscardHandler)}
}

// mustParse parses a format the test knows to be valid.
func mustParse(t testing.TB, s string) *Format {
	t.Helper()
	f, err := ParseFormat(s)
	if err != nil {
		t.Fatalf("ParseFormat(%q): %v", s, err)
	}
	return f
}

// readLines returns the lines of the file at path, each without its
// newline, and fails if the file does not end with one.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: %q", path, tail(b))
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// tail returns the end of b, for messages.
func tail(b []byte) []byte {
	return b[max(0, len(b)-80):]
}

// waitFor polls cond every millisecond until it holds, and fails the
// test if it does not within 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
