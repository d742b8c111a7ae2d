package proxyproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Read reads one PROXY protocol header, of either version, from r.
//
// It consumes the header exactly: it never asks r for a byte past the
// header's end (a version 1 line's CRLF, a version 2 header's declared
// length), so r may be a bare connection whose next bytes belong to
// another protocol. It asks for 15 bytes first, the shortest header of
// either version, then for no more than the shortest valid completion of
// what it has. Only when the bytes are invalid may it have consumed some
// past where a header would have ended; the connection is then unusable
// anyway.
//
// Its errors wrap ErrInvalid, saying what was wrong, or r's error
// (io.ErrUnexpectedEOF when r ended mid-header, io.EOF when it ended
// before the first byte).
func Read(r io.Reader) (Header, error) {
	var buf [maxV1]byte
	if n, err := io.ReadFull(r, buf[:minHeader]); err != nil {
		if n > 0 && !bytes.HasPrefix(buf[:n], sigV2[:min(n, len(sigV2))]) && !bytes.HasPrefix([]byte("PROXY "), buf[:min(n, 6)]) {
			return Header{}, fmt.Errorf("%w (the connection starts with %q)", ErrNoHeader, buf[:n])
		}
		if n == 0 {
			return Header{}, fmt.Errorf("read PROXY protocol header: %w", err)
		}
		return Header{}, readError(err)
	}
	switch {
	case bytes.Equal(buf[:len(sigV2)], sigV2[:]):
		return readV2(r, &buf)
	case bytes.HasPrefix(buf[:], []byte("PROXY ")):
		return readV1(r, &buf)
	}
	return Header{}, fmt.Errorf("%w (the connection starts with %q)", ErrNoHeader, buf[:minHeader])
}

// readError wraps an error of the reader.
func readError(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // ended mid-header
	}
	return fmt.Errorf("read PROXY protocol header: %w", err)
}
