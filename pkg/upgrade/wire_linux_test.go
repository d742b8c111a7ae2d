package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// record is one hand-written record of a fake old process.
type record struct {
	data []byte
	fds  []int
}

// fakeSocket is a socket a fake old process describes as it pleases.
type fakeSocket struct {
	entry entry
	fd    int
}

func newFakeSocket(t *testing.T, service string, index int, c any) fakeSocket {
	t.Helper()
	s := socketOf(t, service, index, c)
	e := entry{Service: s.Service, Addr: s.Addr, Index: s.Index, Network: s.Network, Bound: s.Bound, Options: s.Options}
	return fakeSocket{entry: e, fd: fdOf(t, s.File)}
}

// fdOf is f's descriptor, valid while f is open.
func fdOf(t *testing.T, f *os.File) int {
	t.Helper()
	fd := -1
	if err := controlFD(f, func(n int) error { fd = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func offerRecord(version, count int) record {
	return record{data: fmt.Appendf(nil, `{"type":"offer","proto":"weir-upgrade","version":%d,"count":%d}`, version, count)}
}

// stateRecord is a state record carrying data, the last one if last.
func stateRecord(t *testing.T, data []byte, last bool) record {
	t.Helper()
	b, err := json.Marshal(message{Type: msgState, Data: data, Last: last})
	if err != nil {
		t.Fatal(err)
	}
	return record{data: b}
}

// fullState is a state of exactly MaxStateBytes, in whole chunks, and
// then one byte more.
func fullState(t *testing.T) []record {
	var out []record
	chunk := make([]byte, stateChunkBytes)
	for range MaxStateBytes / stateChunkBytes {
		out = append(out, stateRecord(t, chunk, false))
	}
	return append(out, stateRecord(t, []byte{1}, true))
}

func socketsRecord(t *testing.T, entries []entry, fds ...int) record {
	t.Helper()
	b, err := json.Marshal(message{Type: msgSockets, Sockets: entries})
	if err != nil {
		t.Fatal(err)
	}
	return record{data: b, fds: fds}
}

func repeat(fd, n int) []int {
	fds := make([]int, n)
	for i := range fds {
		fds[i] = fd
	}
	return fds
}

// TestManifestRefused plays an old process that sends a broken manifest,
// and checks the new process refuses it, tells the old one why, and
// keeps no descriptor of it.
func TestManifestRefused(t *testing.T) {
	tests := []struct {
		name    string
		records func(t *testing.T, web, dns fakeSocket) []record
		hangUp  bool // the fake old process closes after its records
		want    error
		text    string
	}{
		{"newer version", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion+1, 1)}
		}, false, ErrVersion, "version 3, and this weir speaks versions 1 to 2"},
		{"not a weir", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{{data: []byte(`{"type":"offer","proto":"ssh","version":1}`)}}
		}, false, ErrProtocol, `"ssh"`},
		{"no offer first", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{{data: []byte(`{"type":"ready"}`)}}
		}, false, ErrProtocol, "first record"},
		{"not JSON", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{{data: []byte("HELLO\n")}}
		}, false, ErrManifest, "undecodable"},
		{"descriptors with the offer", func(t *testing.T, web, dns fakeSocket) []record {
			r := offerRecord(ManifestVersion, 1)
			r.fds = []int{web.fd}
			return []record{r}
		}, false, ErrProtocol, "carried 1 descriptors"},
		{"too many sockets announced", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, maxSockets+1)}
		}, false, ErrManifest, "at most 16384"},
		{"oversized record", func(t *testing.T, web, dns fakeSocket) []record {
			r := offerRecord(ManifestVersion, 1)
			r.data = append(r.data, make([]byte, maxRecordBytes)...)
			return []record{r}
		}, false, ErrManifest, "longer than 65536 bytes"},
		{"truncated manifest", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 2), socketsRecord(t, []entry{web.entry}, web.fd)}
		}, true, ErrPeerGone, "stopped after 1 of 2"},
		{"fewer descriptors than entries", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 2), socketsRecord(t, []entry{web.entry, dns.entry}, web.fd)}
		}, false, ErrManifest, "lists 2 sockets but carries 1 descriptors"},
		{"more descriptors than entries", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd, dns.fd)}
		}, false, ErrManifest, "lists 1 sockets but carries 2 descriptors"},
		{"more descriptors than a record holds", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, repeat(web.fd, maxFDsPerRecord+3)...)}
		}, false, ErrManifest, "lost in transit"},
		{"more sockets than announced", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry, dns.entry}, web.fd, dns.fd)}
		}, false, ErrManifest, "only 1 more were announced"},
		{"one socket twice", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 2), socketsRecord(t, []entry{web.entry, web.entry}, web.fd, web.fd)}
		}, false, ErrManifest, "appears twice"},
		{"twice across records", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 2), socketsRecord(t, []entry{web.entry}, web.fd), socketsRecord(t, []entry{web.entry}, web.fd)}
		}, false, ErrManifest, "appears twice"},
		{"wrong bound address", func(t *testing.T, web, dns fakeSocket) []record {
			e := web.entry
			e.Bound = portPlus(e.Bound, 1)
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{e}, web.fd)}
		}, false, ErrManifest, "the manifest says"},
		{"wrong network", func(t *testing.T, web, dns fakeSocket) []record {
			e := web.entry
			e.Network = NetworkUDP
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{e}, web.fd)}
		}, false, ErrManifest, "the manifest says udp"},
		{"wrong options", func(t *testing.T, web, dns fakeSocket) []record {
			e := web.entry
			e.Options.ReusePort = !e.Options.ReusePort
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{e}, web.fd)}
		}, false, ErrManifest, "ReusePort"},
		{"descriptors swapped", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 2), socketsRecord(t, []entry{web.entry, dns.entry}, dns.fd, web.fd)}
		}, false, ErrManifest, "the manifest says tcp"},
		{"TCP socket not listening", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, fdOf(t, boundTCPSocket(t)))}
		}, false, ErrUnsupportedSocket, "not listening"},
		// A hostile or broken old process's state: bounded per record, in
		// total, and in number of records; in turn; without descriptors.
		{"state record too large", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd),
				stateRecord(t, make([]byte, stateChunkBytes+1), true)}
		}, false, ErrManifest, "a state record holds 32769 bytes"},
		{"state too large", func(t *testing.T, web, dns fakeSocket) []record {
			return append([]record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd)}, fullState(t)...)
		}, false, ErrManifest, "exceeds the limit of 4194304 bytes"},
		{"state never ends", func(t *testing.T, web, dns fakeSocket) []record {
			out := []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd)}
			for range maxStateRecords + 1 {
				out = append(out, stateRecord(t, nil, false))
			}
			return out
		}, false, ErrManifest, "more than 129 records"},
		{"state cut short", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd),
				stateRecord(t, []byte("{"), false)}
		}, true, ErrPeerGone, "the state stopped after 1 bytes"},
		{"no state", func(t *testing.T, web, dns fakeSocket) []record {
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd), {data: []byte(`{"type":"ready"}`)}}
		}, false, ErrProtocol, `a "ready" record came where the state was expected`},
		{"descriptors with the state", func(t *testing.T, web, dns fakeSocket) []record {
			r := stateRecord(t, nil, true)
			r.fds = []int{dns.fd}
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, web.fd), r}
		}, false, ErrProtocol, "carried 1 descriptors"},
		{"not a socket", func(t *testing.T, web, dns fakeSocket) []record {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			return []record{offerRecord(ManifestVersion, 1), socketsRecord(t, []entry{web.entry}, fdOf(t, r))}
		}, false, ErrUnsupportedSocket, "not a socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			web := newFakeSocket(t, "web", 0, listenTCP(t, "127.0.0.1:0", false))
			dns := newFakeSocket(t, "dns", 0, listenUDP(t, "127.0.0.1:0"))
			records := tc.records(t, web, dns)
			before := openFDs(t)

			path := socketPath(t)
			ctx := testContext(t)
			p := receiveAsync(t, ctx, path, defaultSettings())
			p.waitListening(t)
			old := dialRaw(t, path)
			for _, r := range records {
				if _, _, err := old.WriteMsgUnix(r.data, unix.UnixRights(r.fds...), nil); err != nil {
					break // the new process already hung up
				}
			}
			if tc.hangUp {
				old.Close()
			}
			in, err := p.result(t)
			if in != nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Receive = %v, %v; want %v mentioning %q", in, err, tc.want, tc.text)
			}
			if !tc.hangUp {
				if reason := readAbort(t, old); !strings.Contains(reason, tc.text) {
					t.Errorf("the old process was told %q, want a reason mentioning %q", reason, tc.text)
				}
			}
			old.Close()
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors leaked", after-before)
			}
		})
	}
}

// portPlus is ap with its port moved by n.
func portPlus(ap netip.AddrPort, n uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), ap.Port()+n)
}

// dialRaw connects to a receiver as a hand-written old process.
func dialRaw(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAbort reads the record a refusing new process sends last, and
// returns its reason.
func readAbort(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, maxRecordBytes)
	n, err := c.Read(buf)
	if errors.Is(err, unix.ECONNRESET) { // it hung up with records of ours unread
		n, err = c.Read(buf)
	}
	if err != nil {
		t.Fatalf("read the abort: %v", err)
	}
	m, err := decode(buf[:n])
	if err != nil || m.Type != msgAbort {
		t.Fatalf("the new process sent %+v (%v), want an abort", m, err)
	}
	return m.Reason
}

// TestReadyAnsweredOutOfTurn plays an old process that answers ready
// with something else than ack or cancel.
func TestReadyAnsweredOutOfTurn(t *testing.T) {
	path := socketPath(t)
	ctx := testContext(t)
	p := receiveAsync(t, ctx, path, defaultSettings())
	p.waitListening(t)
	old := dialRaw(t, path)
	for _, r := range []record{offerRecord(ManifestVersion, 0), stateRecord(t, nil, true)} {
		if _, err := old.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}
	in, err := p.result(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Sockets()) != 0 {
		t.Fatalf("received %d sockets from an empty manifest", len(in.Sockets()))
	}
	if _, err := old.Write([]byte(`{"type":"ready"}`)); err != nil {
		t.Fatal(err)
	}
	if err := in.Ready(ctx); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), `"ready"`) {
		t.Fatalf("Ready = %v, want ErrProtocol", err)
	}
}

// TestWaitAnsweredOutOfTurn plays a new process that sends something
// else than ready or abort: the old process refuses and cancels.
func TestWaitAnsweredOutOfTurn(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	path := socketPath(t)
	ctx := testContext(t)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := ln.AcceptUnix()
		accepted <- c
	}()
	h, err := Offer(ctx, path, []Socket{socketOf(t, "web", 0, web)})
	if err != nil {
		t.Fatal(err)
	}
	newProc := await(t, accepted, "the connection")
	defer newProc.Close()
	if _, err := newProc.Write([]byte(`{"type":"ack"}`)); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(ctx); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), `"ack"`) {
		t.Fatalf("Wait = %v, want ErrProtocol", err)
	}
	// Skip the manifest (offer, sockets, state); the last record must be
	// the cancel.
	ctl := newUnixControl(newProc)
	var last message
	for range 5 {
		m, files, err := ctl.recvFiles(ctx)
		closeFiles(files)
		if err != nil {
			break
		}
		last = m
	}
	if last.Type != msgCancel || !strings.Contains(last.Reason, "expected ready or abort") {
		t.Fatalf("the new process was last told %+v, want a cancel", last)
	}
	checkServes(t, web)
}
