package compress

import (
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoding is a content coding weir can apply to a response body.
type Encoding uint8

// The encodings, by their Content-Encoding names.
const (
	// Zstd is Zstandard (RFC 8878), "zstd".
	Zstd Encoding = iota + 1
	// Brotli is Brotli (RFC 7932), "br".
	Brotli
	// Gzip is gzip (RFC 1952), "gzip".
	Gzip

	numEncodings
)

// String returns the Content-Encoding name: "zstd", "br" or "gzip".
func (e Encoding) String() string {
	switch e {
	case Zstd:
		return "zstd"
	case Brotli:
		return "br"
	case Gzip:
		return "gzip"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

func (e Encoding) valid() bool { return e > 0 && e < numEncodings }

// ParseEncoding returns the Encoding named s: "zstd", "br" or "gzip".
func ParseEncoding(s string) (Encoding, error) {
	if e := encodingOf([]byte(s)); e != 0 {
		return e, nil
	}
	return 0, fmt.Errorf("unknown content encoding %q: want zstd, br or gzip", s)
}

// encodingOf maps a coding name from Accept-Encoding, in any case, to an
// Encoding; 0 for one weir does not have. "x-gzip" is gzip (RFC 9110
// §8.4.1.3).
func encodingOf(name []byte) Encoding {
	switch {
	case asciiEqualFold(name, "zstd"):
		return Zstd
	case asciiEqualFold(name, "br"):
		return Brotli
	case asciiEqualFold(name, "gzip"), asciiEqualFold(name, "x-gzip"):
		return Gzip
	}
	return 0
}

// The levels favour speed: a proxy compresses every response anew, and a
// response that could be compressed harder once is better compressed by
// its origin ahead of time (weir then passes it on untouched).
const (
	gzipLevel   = 5 // klauspost's level 5: about stdlib's 6 in size, much faster
	brotliLevel = 2 // measured: twice level 4's speed, and no worse above 16 KiB (BenchmarkEncode)
	// zstdWindow bounds the memory of each encoder in flight; web
	// responses gain little from a longer history.
	zstdWindow = 1 << 20
)

// Encoders are pooled per encoding: making one costs far more than a
// small response's compression (zstd's and brotli's tables above all).
// The pools are caches, shared by every Policy: each encoder is reset
// before its reuse, so nothing of one response reaches another.
var pools = [numEncodings]sync.Pool{
	Zstd: {New: func() any {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(fmt.Sprintf("compress: zstd options rejected: %v", err)) // fixed options: a programming error
		}
		return &encoder{enc: Zstd, w: z}
	}},
	Brotli: {New: func() any {
		return &encoder{enc: Brotli, w: brotli.NewWriterLevel(nil, brotliLevel)}
	}},
	Gzip: {New: func() any {
		g, err := gzip.NewWriterLevel(nil, gzipLevel)
		if err != nil {
			panic(fmt.Sprintf("compress: gzip level %d rejected: %v", gzipLevel, err))
		}
		return &encoder{enc: Gzip, w: g}
	}},
}

// stream is what each library's writer has.
type stream interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

// encoder is a pooled compressor of one Encoding; it implements
// l7.BodyEncoder.
type encoder struct {
	enc Encoding
	w   stream
}

// getEncoder returns a pooled encoder of e writing to dst.
func getEncoder(e Encoding, dst io.Writer) *encoder {
	c := pools[e].Get().(*encoder)
	c.w.Reset(dst)
	return c
}

// Write compresses p.
func (c *encoder) Write(p []byte) (int, error) { return c.w.Write(p) }

// Flush writes everything compressed so far, decodable by the client
// without what follows.
func (c *encoder) Flush() error { return c.w.Flush() }

// Close writes the end of the compressed stream and returns the encoder
// to its pool.
func (c *encoder) Close() error {
	err := c.w.Close()
	c.release()
	return err
}

// Abandon returns the encoder to its pool without writing anything more.
func (c *encoder) Abandon() { c.release() }

func (c *encoder) release() {
	c.w.Reset(io.Discard) // drop the client's writer
	pools[c.enc].Put(c)
}
