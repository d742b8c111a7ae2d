package h2

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// FrameHeaderLen is the length of a frame header (RFC 9113 §4.1).
const FrameHeaderLen = 9

// AppendFrameHeader appends the header of a frame of type t with a
// payload of length bytes on stream id (its reserved bit cleared).
func AppendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	b = append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags))
	return binary.BigEndian.AppendUint32(b, id&(1<<31-1))
}

// AppendSetting appends one setting of a SETTINGS frame's payload.
func AppendSetting(b []byte, id http2.SettingID, v uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(id))
	return binary.BigEndian.AppendUint32(b, v)
}

// NextHeaderFrame splits the next frame off a header block: block is what
// remains of it, first says no frame of it was sent yet, maxFrame is the
// peer's SETTINGS_MAX_FRAME_SIZE and endStream whether the block ends
// the stream. It returns the frame's type (HEADERS first, CONTINUATION
// after), its flags, its payload and what remains; the frame carrying
// the block's last byte has END_HEADERS (RFC 9113 §4.3). An empty block
// is one HEADERS frame.
func NextHeaderFrame(block []byte, maxFrame int, first, endStream bool) (t http2.FrameType, flags http2.Flags, frag, rest []byte) {
	t = http2.FrameContinuation
	if first {
		t = http2.FrameHeaders
		if endStream {
			flags = http2.FlagHeadersEndStream
		}
	}
	frag = block
	if len(frag) > maxFrame {
		frag = frag[:maxFrame]
	} else {
		flags |= http2.FlagHeadersEndHeaders
	}
	return t, flags, frag, block[len(frag):]
}
