package proxyproto

import (
	"bytes"
	"net/netip"
	"testing"
)

// BenchmarkRead reads a typical header of each version: what a server
// pays per connection from a balancer.
func BenchmarkRead(b *testing.B) {
	src, dst := netip.MustParseAddrPort("203.0.113.7:51234"), netip.MustParseAddrPort("198.51.100.1:443")
	for _, v := range []Version{V1, V2} {
		h := Proxied(v, src, dst)
		enc, err := h.Append(nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("v"+string(rune('0'+v)), func(b *testing.B) {
			var r bytes.Reader
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(enc)
				if _, err := Read(&r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppend encodes a header of each version into a reused buffer.
func BenchmarkAppend(b *testing.B) {
	src, dst := netip.MustParseAddrPort("203.0.113.7:51234"), netip.MustParseAddrPort("198.51.100.1:443")
	for _, v := range []Version{V1, V2} {
		h := Proxied(v, src, dst)
		b.Run("v"+string(rune('0'+v)), func(b *testing.B) {
			buf := make([]byte, 0, 128)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Append(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
