package h2

import (
	"bytes"
	"io"
	"testing"

	"golang.org/x/net/http2"
)

// TestNextHeaderFrame splits header blocks of several sizes into frames
// and reads them back with x/net/http2's Framer, which checks HEADERS,
// CONTINUATION and END_HEADERS as a peer would.
func TestNextHeaderFrame(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size, max int
		endStream bool
		frames    int
	}{
		{"empty", 0, 16, false, 1},
		{"one frame", 10, 16, true, 1},
		{"exactly one frame", 16, 16, false, 1},
		{"two frames", 17, 16, true, 2},
		{"many frames", 100, 16, false, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			block := make([]byte, tc.size)
			for i := range block {
				block[i] = byte(i)
			}
			var out []byte
			rest, n := block, 0
			for first := true; first || len(rest) > 0; first = false {
				typ, flags, frag, r := NextHeaderFrame(rest, tc.max, first, tc.endStream)
				out = AppendFrameHeader(out, len(frag), typ, flags, 3)
				out = append(out, frag...)
				rest = r
				n++
			}
			if n != tc.frames {
				t.Errorf("%d frames, want %d", n, tc.frames)
			}
			fr := http2.NewFramer(io.Discard, bytes.NewReader(out))
			var got []byte
			for i := 0; i < n; i++ {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				switch f := f.(type) {
				case *http2.HeadersFrame:
					if i != 0 || f.StreamID != 3 || f.StreamEnded() != tc.endStream || f.HeadersEnded() != (i == n-1) {
						t.Errorf("frame %d: HEADERS stream %d end stream %v end headers %v", i, f.StreamID, f.StreamEnded(), f.HeadersEnded())
					}
					got = append(got, f.HeaderBlockFragment()...)
				case *http2.ContinuationFrame:
					if i == 0 || f.HeadersEnded() != (i == n-1) {
						t.Errorf("frame %d: CONTINUATION end headers %v", i, f.HeadersEnded())
					}
					got = append(got, f.HeaderBlockFragment()...)
				default:
					t.Fatalf("frame %d: %T", i, f)
				}
			}
			if !bytes.Equal(got, block) {
				t.Errorf("the frames carry % x, want % x", got, block)
			}
		})
	}
}

func TestAppendSettings(t *testing.T) {
	p := AppendFrameHeader(nil, 2*6, http2.FrameSettings, 0, 0)
	p = AppendSetting(p, http2.SettingMaxConcurrentStreams, 256)
	p = AppendSetting(p, http2.SettingInitialWindowSize, 1<<18)
	f, err := http2.NewFramer(io.Discard, bytes.NewReader(p)).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf := f.(*http2.SettingsFrame)
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 256 {
		t.Errorf("max concurrent streams %d %v", v, ok)
	}
	if v, ok := sf.Value(http2.SettingInitialWindowSize); !ok || v != 1<<18 {
		t.Errorf("initial window %d %v", v, ok)
	}
	if got := AppendFrameHeader(nil, 0, http2.FrameData, 0, 1<<31|5); got[8] != 5 || got[5]&0x80 != 0 {
		t.Errorf("the reserved bit is not cleared: % x", got)
	}
}
