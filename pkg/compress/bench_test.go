package compress

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// sample returns n bytes of HTML-like text with some variety, so that the
// encoders meet neither pure repetition nor noise.
func sample(n int) []byte {
	words := strings.Fields("weir proxy backend request response header body stream chunk client " +
		"upstream pool health check route table cookie session encoding compress gzip zstd brotli " +
		"<div class=\"item\"> </div> <a href=\"/path/to/page\"> </a> <span> </span> {\"id\": 42, \"name\":")
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(" \n"[r.IntN(8)/7])
	}
	return []byte(b.String()[:n])
}

// BenchmarkEncode compresses one response body of each size as the proxy
// does: written in reads of up to 32 KiB, flushed after each, closed.
// ratio is the encoded size over the original.
func BenchmarkEncode(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := sample(size)
		for _, e := range []Encoding{Zstd, Brotli, Gzip} {
			b.Run(fmt.Sprintf("%s/%dKiB", e, size>>10), func(b *testing.B) {
				var out countingDiscard
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					out = 0
					enc := getEncoder(e, &out)
					for p := body; len(p) > 0; {
						n := min(len(p), 32<<10)
						enc.Write(p[:n])
						enc.Flush()
						p = p[n:]
					}
					enc.Close()
				}
				b.ReportMetric(float64(out)/float64(size), "ratio")
			})
		}
	}
}

type countingDiscard int

func (c *countingDiscard) Write(p []byte) (int, error) {
	*c += countingDiscard(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingDiscard)(nil)
