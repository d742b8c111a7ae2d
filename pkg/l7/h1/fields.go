package h1

import "bytes"

// parseFields parses the field lines of block b. lineEnds holds the offset
// of the LF of each field line and, last, of the empty line ending the
// block; the first field line starts at off. With inPlace the fields are
// recorded in dst as spans of b, which must be dst's own buffer; otherwise
// they are copied into dst. A nil dst only validates.
//
// The rules are RFC 9112 §5's, strictly: a field line starting with
// whitespace (obs-fold, or whitespace before the first field) and
// whitespace between name and colon are rejected, because recipients that
// handle them differently disagree about which fields a message has.
func parseFields(b []byte, off int, lineEnds []uint32, dst *Header, inPlace bool) error {
	for _, lf := range lineEnds[:len(lineEnds)-1] {
		end := int(lf)
		if b[end-1] == '\r' {
			end--
		}
		colon, vs, ve, err := parseFieldLine(b[off:end])
		if err != nil {
			return err
		}
		if dst != nil {
			if inPlace {
				dst.addSpan(off, colon, off+vs, ve-vs)
			} else {
				dst.AddBytes(b[off:off+colon], b[off+vs:off+ve])
			}
		}
		off = int(lf) + 1
	}
	return nil
}

// parseFieldLine checks one field line (without its line ending) and
// returns the offset of its colon and the bounds of its trimmed value.
func parseFieldLine(line []byte) (colon, valueStart, valueEnd int, err error) {
	// The name is checked in the same pass that looks for the colon.
	for colon < len(line) && charClasses[line[colon]]&classToken != 0 {
		colon++
	}
	if colon == len(line) || line[colon] != ':' || colon == 0 {
		return 0, 0, 0, badFieldLine(line)
	}
	valueStart, valueEnd = colon+1, len(line)
	for valueStart < valueEnd && isOWS(line[valueStart]) {
		valueStart++
	}
	for valueEnd > valueStart && isOWS(line[valueEnd-1]) {
		valueEnd--
	}
	if i := invalidValueByte(line[valueStart:valueEnd]); i >= 0 {
		return 0, 0, 0, malformed("field %q value with %s", quote(line[:colon]), badByteMsg(line[valueStart+i]))
	}
	return colon, valueStart, valueEnd, nil
}

// badFieldLine explains why a field line has no valid name before a colon.
func badFieldLine(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	switch {
	case isOWS(line[0]):
		return malformed("field line starts with whitespace (obs-fold): %q", quote(line))
	case colon < 0:
		return malformed("field line without colon: %q", quote(line))
	case colon == 0:
		return malformed("empty field name: %q", quote(line))
	}
	name := line[:colon]
	i := invalidByte(name, classToken)
	if len(trimOWS(name[i:])) == 0 {
		return malformed("whitespace between field name and colon: %q", quote(line))
	}
	return malformed("field name with %s: %q", badByteMsg(name[i]), quote(line))
}
