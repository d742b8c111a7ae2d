package l7

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzH2Server sends arbitrary bytes, after a valid client preface, to
// the HTTP/2 server proxying to an echoing origin. Whatever they are, the
// server must neither panic nor hang: once the client stops sending it
// ends the connection in bounded time. And everything it sent must be
// well-formed HTTP/2: frames a client can parse, header blocks that
// decode with valid fields, DATA within the client's windows.
func FuzzH2Server(f *testing.F) {
	for _, seed := range h2Seeds() {
		f.Add(seed)
	}
	addr, _ := h2Front(f, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Write(body)
	}, func(s *Server) {
		s.IdleTimeout, s.WriteTimeout = 2*time.Second, 2*time.Second
		s.RequestID = true // hostile input meets the ids and the observer too
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(h2TestTimeout))
		go func() {
			nc.Write(append([]byte(http2.ClientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), input...))
			nc.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("the server did not end the connection after the client's last byte: %v", err)
		}
		if err := checkH2Output(out); err != nil {
			t.Fatalf("%v\nin the server's output (% x)", err, out)
		}
	})
}

// checkH2Output parses what an HTTP/2 server sent as a client would:
// frames, header blocks and their fields. (Flow control it leaves to
// TestH2FlowControlOfResponses: the fuzzed input moves the windows.)
func checkH2Output(out []byte) error {
	fr := http2.NewFramer(io.Discard, bytes.NewReader(out))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	first := true
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unparsable frame: %w", err)
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				return fmt.Errorf("the server's preface opens with %v, not SETTINGS", f.Header())
			}
			first = false
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			if mh.Truncated {
				return fmt.Errorf("stream %d: header block over 1 MiB", mh.StreamID)
			}
			if st := mh.PseudoValue("status"); st != "" && (len(st) != 3 || st[0] < '1' || st[0] > '5') {
				return fmt.Errorf("stream %d: :status %q", mh.StreamID, st)
			}
			for _, hf := range mh.RegularFields() {
				if hf.Name == "connection" || hf.Name == "transfer-encoding" || hf.Name == "keep-alive" {
					return fmt.Errorf("stream %d: connection-specific field %s in a response", mh.StreamID, hf.Name)
				}
			}
		}
	}
}

// h2Seeds are client frame sequences (after the preface) for the fuzzer
// to start from: good requests of every shape, and the bad inputs of the
// tests in h2server_test.go.
func h2Seeds() [][]byte {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.AllowIllegalWrites = true
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	post := []string{":method", "POST", ":scheme", "http", ":authority", "front.example", ":path", "/"}
	seq := func(write func()) []byte {
		buf.Reset()
		enc = hpack.NewEncoder(&hb) // every seed starts a connection: a fresh table
		write()
		return bytes.Clone(buf.Bytes())
	}
	headers := func(id uint32, end bool, fields ...string) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(fields...), EndStream: end, EndHeaders: true})
	}
	seeds := [][]byte{
		seq(func() { headers(1, true, h2Base...) }),
		seq(func() {
			headers(1, false, append(post, "content-length", "5")...)
			fr.WriteData(1, true, []byte("hello"))
			headers(3, true, h2Base...)
		}),
		seq(func() {
			headers(1, false, append(post, "te", "trailers")...)
			fr.WriteDataPadded(1, false, []byte("chunk"), []byte{0, 0, 0})
			headers(1, true, "x-sum", "1")
		}),
		seq(func() {
			headers(1, false, append(post, "expect", "100-continue")...)
			fr.WriteData(1, true, []byte("body"))
		}),
		seq(func() {
			fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
			headers(1, true, h2Base...)
			fr.WriteWindowUpdate(1, 100)
			fr.WriteWindowUpdate(0, 100)
			fr.WritePing(false, [8]byte{1, 2, 3})
		}),
		seq(func() {
			b := block(with("x-long", string(bytes.Repeat([]byte("v"), 100)))...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10], EndStream: true})
			fr.WriteContinuation(1, false, b[10:50])
			fr.WriteContinuation(1, true, b[50:])
		}),
		seq(func() {
			headers(1, true, h2Base...)
			fr.WriteRSTStream(1, http2.ErrCodeCancel)
			fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 5})
			fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		}),
		seq(func() { headers(1, true, ":method", "CONNECT", ":authority", "front.example:443") }),
		seq(func() { fr.WriteData(1, true, []byte("x")) }),
		seq(func() { headers(2, true, h2Base...) }),
		seq(func() { fr.WriteWindowUpdate(0, 1<<31-1) }),
		seq(func() {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(h2Base...), EndStream: true})
			for range 4 {
				fr.WriteContinuation(1, false, bytes.Repeat([]byte{0x82}, 4096))
			}
		}),
	}
	for _, bad := range [][]string{
		with("X-Upper", "1"),
		with("connection", "keep-alive"),
		with("x-a", "1\r\nx-injected: 1"),
		with("host", "other.example"),
		{":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "/a b"},
		append(post, "content-length", "5", "content-length", "6"),
	} {
		seeds = append(seeds, seq(func() { headers(1, true, bad...) }))
	}
	return seeds
}
