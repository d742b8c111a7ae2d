package upgrade

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"unicode/utf8"
)

// ManifestVersion is the version of the handoff protocol this package
// sends. Version 2 adds the state records after the sockets. The new
// process accepts versions minManifestVersion to ManifestVersion (a
// version 1 peer sends no state) and refuses any other, and the old one
// learns why from the abort reason.
const ManifestVersion = 2

// minManifestVersion is the oldest version a new process accepts: an
// upgrade from a weir that hands over no state still goes through.
const minManifestVersion = 1

// protocolName marks the first message, so that a stray process talking
// to the upgrade socket is told apart from a weir of another version.
const protocolName = "weir-upgrade"

// Bounds of the wire format. A record is one SOCK_SEQPACKET message: the
// kernel delivers it whole with its descriptors, or not at all.
const (
	// maxRecordBytes bounds one record; it stays well below the default
	// socket send buffer (net.core.wmem_default, 208 KiB), past which
	// the kernel refuses a record with EMSGSIZE.
	maxRecordBytes = 64 << 10
	// maxFDsPerRecord stays below Linux's SCM_MAX_FD (253), the most
	// descriptors one sendmsg(2) may carry.
	maxFDsPerRecord = 250
	// maxSockets bounds the whole manifest (and the descriptors a new
	// process accepts): far beyond any configuration, well below any
	// sane open-file limit.
	maxSockets = 16384
	// maxNameBytes bounds a service name or configured address.
	maxNameBytes = 1024
	// maxReasonBytes bounds an abort or cancel reason.
	maxReasonBytes = 1024
	// MaxStateBytes bounds the opaque state the old process hands over
	// (runtime overrides and health verdicts): far beyond what thousands
	// of backends need, small enough that a hostile peer cannot make the
	// new process hold much.
	MaxStateBytes = 4 << 20
	// stateChunkBytes is the most state one record carries; in base64
	// it stays well within maxRecordBytes.
	stateChunkBytes = 32 << 10
	// maxStateRecords bounds the state records a new process reads.
	maxStateRecords = MaxStateBytes/stateChunkBytes + 1
)

// msgType tells the records apart.
type msgType string

// The records, in the order they travel:
//
//	old → new  offer    protocol, version, number of sockets
//	old → new  sockets  up to maxFDsPerRecord entries + their descriptors (repeated)
//	old → new  state    up to stateChunkBytes of the state (repeated; the last says so; version 2)
//	new → old  ready    or abort (with reason)
//	old → new  ack      or cancel (with reason)
const (
	msgOffer   msgType = "offer"
	msgSockets msgType = "sockets"
	msgState   msgType = "state"
	msgReady   msgType = "ready"
	msgAbort   msgType = "abort"
	msgAck     msgType = "ack"
	msgCancel  msgType = "cancel"
)

// message is one record. Only the fields of its Type are set.
type message struct {
	Type    msgType `json:"type"`
	Proto   string  `json:"proto,omitempty"`
	Version int     `json:"version,omitempty"`
	Count   int     `json:"count,omitempty"`
	Sockets []entry `json:"sockets,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// Data is a chunk of the state, Last set on its final record.
	Data []byte `json:"data,omitempty"`
	Last bool   `json:"last,omitempty"`
}

// entry is a Socket without its descriptor: one line of the manifest.
type entry struct {
	Service string         `json:"service"`
	Addr    string         `json:"addr"`
	Index   int            `json:"index"`
	Member  int            `json:"member,omitempty"`
	Network string         `json:"network"`
	Bound   netip.AddrPort `json:"bound"`
	Options Options        `json:"options"`
}

func (e *entry) key() key { return key{e.Service, e.Addr, e.Index, e.Member} }

// socket is the Socket e describes, with its descriptor f.
func (e *entry) socket(f *os.File) Socket {
	return Socket{Service: e.Service, Addr: e.Addr, Index: e.Index, Member: e.Member, Network: e.Network, Bound: e.Bound, Options: e.Options, File: f}
}

// offerMessage opens a handoff of count sockets.
func offerMessage(count int) message {
	return message{Type: msgOffer, Proto: protocolName, Version: ManifestVersion, Count: count}
}

// reasonMessage is an abort or cancel carrying why, cut to fit.
func reasonMessage(t msgType, reason string) message {
	if reason == "" {
		reason = "no reason given"
	}
	return message{Type: t, Reason: truncateUTF8(reason, maxReasonBytes)}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// encode serialises m as one record.
func encode(m message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %s record: %w", ErrManifest, m.Type, err)
	}
	if len(b) > maxRecordBytes {
		return nil, fmt.Errorf("%w: %s record is %d bytes, more than the limit of %d", ErrManifest, m.Type, len(b), maxRecordBytes)
	}
	return b, nil
}

// decode parses one record strictly: unknown fields are refused, since a
// field this version does not know may change what a socket means.
func decode(b []byte) (message, error) {
	var m message
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return message{}, fmt.Errorf("%w: undecodable record (%d bytes): %w", ErrManifest, len(b), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return message{}, fmt.Errorf("%w: record (%d bytes) has data after its JSON object", ErrManifest, len(b))
	}
	if err := m.validate(); err != nil {
		return message{}, err
	}
	return m, nil
}

// validate checks what a record of m's type must hold.
func (m *message) validate() error {
	switch m.Type {
	case msgOffer:
		return m.validateOffer()
	case msgSockets:
		if n := len(m.Sockets); n == 0 || n > maxFDsPerRecord {
			return fmt.Errorf("%w: a sockets record holds %d entries; want 1 to %d", ErrManifest, n, maxFDsPerRecord)
		}
		for i := range m.Sockets {
			if err := m.Sockets[i].validate(); err != nil {
				return err
			}
		}
	case msgState:
		if len(m.Data) > stateChunkBytes {
			return fmt.Errorf("%w: a state record holds %d bytes; at most %d", ErrManifest, len(m.Data), stateChunkBytes)
		}
	case msgReady, msgAck, msgAbort, msgCancel:
	default:
		return fmt.Errorf("%w: unknown record type %q", ErrProtocol, m.Type)
	}
	return nil
}

func (m *message) validateOffer() error {
	if m.Proto != protocolName {
		return fmt.Errorf("%w: the peer speaks %q, not %q", ErrProtocol, m.Proto, protocolName)
	}
	if m.Version < minManifestVersion || m.Version > ManifestVersion {
		return fmt.Errorf("%w: the old process sent manifest version %d, and this weir speaks versions %d to %d; upgrade through a release that speaks both", ErrVersion, m.Version, minManifestVersion, ManifestVersion)
	}
	if m.Count < 0 || m.Count > maxSockets {
		return fmt.Errorf("%w: the offer announces %d sockets; at most %d are accepted", ErrManifest, m.Count, maxSockets)
	}
	return nil
}

// validate checks an entry on its own; its descriptor is checked later.
func (e *entry) validate() error {
	switch {
	case e.Service == "" || len(e.Service) > maxNameBytes:
		return fmt.Errorf("%w: %s: the service name must be 1 to %d bytes", ErrManifest, e.key(), maxNameBytes)
	case e.Addr == "" || len(e.Addr) > maxNameBytes:
		return fmt.Errorf("%w: %s: the configured address must be 1 to %d bytes", ErrManifest, e.key(), maxNameBytes)
	case e.Index < 0:
		return fmt.Errorf("%w: %s: negative listener index", ErrManifest, e.key())
	case e.Member < 0 || e.Member >= maxSockets:
		return fmt.Errorf("%w: %s: socket %d of a group; want 0 to %d", ErrManifest, e.key(), e.Member, maxSockets-1)
	case e.Network != NetworkTCP && e.Network != NetworkUDP:
		return fmt.Errorf("%w: %s: network %q; want %q or %q", ErrManifest, e.key(), e.Network, NetworkTCP, NetworkUDP)
	case !e.Bound.IsValid() || e.Bound.Port() == 0:
		return fmt.Errorf("%w: %s: bound address %q is not an address with a port", ErrManifest, e.key(), e.Bound)
	case e.Options.FastOpen < 0:
		return fmt.Errorf("%w: %s: negative TCP_FASTOPEN queue length %d", ErrManifest, e.key(), e.Options.FastOpen)
	case len(e.Options.Device) > maxNameBytes:
		return fmt.Errorf("%w: %s: device name longer than %d bytes", ErrManifest, e.key(), maxNameBytes)
	}
	return nil
}

// batches splits entries into sockets records that respect both
// maxFDsPerRecord and maxRecordBytes, filling each record in turn. An
// entry encodes the same alone as inside the record's array, so the
// sizes add up exactly.
func batches(entries []entry) ([][]entry, error) {
	overhead := len(`{"type":"sockets","sockets":[]}`)
	var out [][]entry
	start, size := 0, overhead
	for i := range entries {
		b, err := json.Marshal(&entries[i])
		if err != nil {
			return nil, fmt.Errorf("%w: encode %s: %w", ErrManifest, entries[i].key(), err)
		}
		n := len(b) + 1 // and a comma
		if overhead+n > maxRecordBytes {
			return nil, fmt.Errorf("%w: %s alone encodes to %d bytes, more than a record's %d", ErrManifest, entries[i].key(), len(b), maxRecordBytes)
		}
		if i-start == maxFDsPerRecord || size+n > maxRecordBytes {
			out = append(out, entries[start:i])
			start, size = i, overhead
		}
		size += n
	}
	if start < len(entries) {
		out = append(out, entries[start:])
	}
	return out, nil
}

// stateRecords splits state into the state records that carry it: at
// least one, the last marked, each within stateChunkBytes.
func stateRecords(state []byte) ([]message, error) {
	if len(state) > MaxStateBytes {
		return nil, fmt.Errorf("%w: the state is %d bytes, more than the limit of %d", ErrManifest, len(state), MaxStateBytes)
	}
	var out []message
	for len(state) > stateChunkBytes {
		out = append(out, message{Type: msgState, Data: state[:stateChunkBytes]})
		state = state[stateChunkBytes:]
	}
	return append(out, message{Type: msgState, Data: state, Last: true}), nil
}

// checkUnique reports the first key that appears twice.
func checkUnique(entries []entry) error {
	seen := make(map[key]struct{}, len(entries))
	for i := range entries {
		k := entries[i].key()
		if _, dup := seen[k]; dup {
			return fmt.Errorf("%w: %s appears twice", ErrManifest, k)
		}
		seen[k] = struct{}{}
	}
	return nil
}
