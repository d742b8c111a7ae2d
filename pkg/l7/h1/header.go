package h1

import "iter"

// Header is an ordered list of header (or trailer) fields.
//
// Names compare case-insensitively (ASCII). A Header owns its bytes: Add and
// Set copy their arguments, and the name and value slices returned by At and
// Get point into storage that stays valid until Reset (or until the Request
// or Response holding the Header is read into again). The slices have their
// capacity clipped, so appending to one never overwrites a neighbour.
//
// The zero value is an empty Header ready to use. Reset keeps the capacity,
// so a Header reused across messages stops allocating once it has grown to
// the traffic's size.
//
// Add and Set do not validate: a value containing CR or LF would be written
// out verbatim by AppendTo. Check untrusted input with ValidFieldName and
// ValidFieldValue first. Fields parsed by a Reader are already valid.
type Header struct {
	// buf holds the bytes of every field. For a parsed message it is the
	// arena holding the whole head, so fields are spans into it.
	buf    []byte
	fields []field
}

// field locates one field's name and value in Header.buf.
type field struct {
	name, value span
}

// span is a byte range of Header.buf. 32-bit offsets keep a field at 16
// bytes; a head is bounded by Limits far below 4 GiB.
type span struct {
	off, n uint32
}

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.fields) }

// At returns the name and value of field i, 0 <= i < Len().
func (h *Header) At(i int) (name, value []byte) {
	f := h.fields[i]
	return h.bytes(f.name), h.bytes(f.value)
}

func (h *Header) bytes(s span) []byte {
	end := s.off + s.n
	return h.buf[s.off:end:end]
}

// MoveToFront moves field i before every other, keeping the order of the
// rest: a proxy sends Host first (RFC 9110 §7.2) whatever the order it
// came in.
func (h *Header) MoveToFront(i int) {
	f := h.fields[i]
	copy(h.fields[1:i+1], h.fields[:i])
	h.fields[0] = f
}

// index returns the position of the first field named name at or after
// from, or -1.
func index[T string | []byte](h *Header, name T, from int) int {
	for i := from; i < len(h.fields); i++ {
		if equalFold(h.bytes(h.fields[i].name), name) {
			return i
		}
	}
	return -1
}

// Get returns the value of the first field named name.
func (h *Header) Get(name string) (value []byte, ok bool) {
	i := index(h, name, 0)
	if i < 0 {
		return nil, false
	}
	return h.bytes(h.fields[i].value), true
}

// GetBytes is Get for a name held as bytes.
func (h *Header) GetBytes(name []byte) (value []byte, ok bool) {
	i := index(h, name, 0)
	if i < 0 {
		return nil, false
	}
	return h.bytes(h.fields[i].value), true
}

// Has reports whether a field named name is present.
func (h *Header) Has(name string) bool { return index(h, name, 0) >= 0 }

// Count returns the number of fields named name.
func (h *Header) Count(name string) int {
	n := 0
	for i := index(h, name, 0); i >= 0; i = index(h, name, i+1) {
		n++
	}
	return n
}

// Add appends a field, copying name and value.
func (h *Header) Add(name, value string) { addField(h, name, value) }

// AddBytes appends a field, copying name and value.
func (h *Header) AddBytes(name, value []byte) { addField(h, name, value) }

func addField[N, V string | []byte](h *Header, name N, value V) {
	h.fields = append(h.fields, field{name: store(h, name), value: store(h, value)})
}

// store copies b to the end of buf and returns where it went.
func store[T string | []byte](h *Header, b T) span {
	off := len(h.buf)
	h.buf = append(h.buf, b...)
	return span{off: uint32(off), n: uint32(len(b))}
}

// Set replaces every field named name by one with value. The field keeps the
// position of the first one it replaces, so the order of the others is
// preserved; when name is absent the field is appended.
func (h *Header) Set(name, value string) { setField(h, name, value) }

// SetBytes is Set with name and value held as bytes.
func (h *Header) SetBytes(name, value []byte) { setField(h, name, value) }

func setField[N, V string | []byte](h *Header, name N, value V) {
	i := index(h, name, 0)
	if i < 0 {
		addField(h, name, value)
		return
	}
	h.fields[i].value = store(h, value)
	deleteFrom(h, name, i+1)
}

// Del removes every field named name.
func (h *Header) Del(name string) { deleteFrom(h, name, 0) }

// DelBytes is Del for a name held as bytes, such as a Connection option.
func (h *Header) DelBytes(name []byte) { deleteFrom(h, name, 0) }

// deleteFrom removes the fields named name at or after from, compacting in
// place. Their bytes stay in buf until Reset: reclaiming them would mean
// moving every later field for little gain within one message.
func deleteFrom[T string | []byte](h *Header, name T, from int) {
	h.filter(from, func(n []byte) bool { return !equalFold(n, name) })
}

// filter keeps, among the fields at or after from, those whose name
// satisfies keep, preserving order.
func (h *Header) filter(from int, keep func(name []byte) bool) {
	kept := from
	for i := from; i < len(h.fields); i++ {
		if keep(h.bytes(h.fields[i].name)) {
			h.fields[kept] = h.fields[i]
			kept++
		}
	}
	h.fields = h.fields[:kept]
}

// Reset removes every field and keeps the allocated capacity.
func (h *Header) Reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
}

// CopyFrom makes h a copy of src, reusing h's capacity.
func (h *Header) CopyFrom(src *Header) {
	h.Reset()
	for i := range src.fields {
		h.AddBytes(src.At(i))
	}
}

// All iterates over the fields in order.
func (h *Header) All() iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		for i := range h.fields {
			if !yield(h.At(i)) {
				return
			}
		}
	}
}

// Values iterates over the values of the fields named name, in order.
func (h *Header) Values(name string) iter.Seq[[]byte] {
	return func(yield func(value []byte) bool) {
		for i := index(h, name, 0); i >= 0; i = index(h, name, i+1) {
			if !yield(h.bytes(h.fields[i].value)) {
				return
			}
		}
	}
}

// AppendTo appends the fields to dst as "name: value\r\n" lines, without
// the empty line that ends a head.
func (h *Header) AppendTo(dst []byte) []byte {
	for i := range h.fields {
		name, value := h.At(i)
		dst = AppendField(dst, name, value)
	}
	return dst
}

// setArena makes the head bytes the Header's storage, after Reset, so that
// parsed fields can be recorded as spans without copying them again.
func (h *Header) setArena(head []byte) []byte {
	h.Reset()
	h.buf = append(h.buf, head...)
	return h.buf
}

// addSpan appends a field whose name and value already lie in buf.
func (h *Header) addSpan(nameOff, nameLen, valueOff, valueLen int) {
	h.fields = append(h.fields, field{
		name:  span{off: uint32(nameOff), n: uint32(nameLen)},
		value: span{off: uint32(valueOff), n: uint32(valueLen)},
	})
}

// ValidFieldName reports whether name is a token, as a field name must be.
func ValidFieldName(name []byte) bool { return isToken(name) }

// ValidFieldValue reports whether value may be sent as a field value: no
// CR, LF, NUL or other control byte except HTAB, and no leading or trailing
// whitespace (which a recipient would strip).
func ValidFieldValue(value []byte) bool {
	if len(value) > 0 && (isOWS(value[0]) || isOWS(value[len(value)-1])) {
		return false
	}
	return invalidByte(value, classFieldValue) < 0
}
