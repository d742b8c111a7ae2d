package upgrade

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStateHandedOver: the old process's state reaches the new one
// byte for byte, in one record or many, alongside the sockets, and the
// handoff then completes as usual.
func TestStateHandedOver(t *testing.T) {
	tests := []struct {
		name  string
		state []byte
	}{
		{"none", nil},
		{"small", []byte(`{"version":1,"services":[]}`)},
		{"one chunk exactly", bytes.Repeat([]byte("a"), stateChunkBytes)},
		{"many chunks", bytes.Repeat([]byte("0123456789"), 10_000)},
		{"the limit", bytes.Repeat([]byte{0xff}, MaxStateBytes)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			web := listenTCP(t, "127.0.0.1:0", false)
			ctx := testContext(t)
			path := socketPath(t)
			p := receiveAsync(t, ctx, path, defaultSettings())
			p.waitListening(t)
			h, err := OfferState(ctx, path, []Socket{socketOf(t, "web", 0, web)}, tc.state)
			if err != nil {
				t.Fatalf("OfferState: %v", err)
			}
			defer h.Close()
			in, err := p.result(t)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if got := in.State(); !bytes.Equal(got, tc.state) {
				t.Fatalf("State() is %d bytes, want the %d sent", len(got), len(tc.state))
			}
			if len(in.Sockets()) != 1 {
				t.Fatalf("received %d sockets, want 1", len(in.Sockets()))
			}
			waited := make(chan error, 1)
			go func() { waited <- h.Wait(ctx) }()
			if err := in.Ready(ctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if err := await(t, waited, "Wait"); err != nil {
				t.Fatalf("Wait: %v", err)
			}
		})
	}
}

// TestOfferStateRefusesOversizedState: the old process checks the bound
// before it connects, so nothing is half sent.
func TestOfferStateRefusesOversizedState(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	ctx := testContext(t)
	_, err := OfferState(ctx, socketPath(t), []Socket{socketOf(t, "web", 0, web)}, make([]byte, MaxStateBytes+1))
	if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "more than the limit of 4194304") {
		t.Fatalf("OfferState = %v, want ErrManifest naming the limit", err)
	}
	checkServes(t, web)
}

// TestVersion1OldProcessAccepted: a weir of manifest version 1 sends no
// state; its successor takes the sockets over all the same.
func TestVersion1OldProcessAccepted(t *testing.T) {
	web := newFakeSocket(t, "web", 0, listenTCP(t, "127.0.0.1:0", false))
	path := socketPath(t)
	ctx := testContext(t)
	p := receiveAsync(t, ctx, path, defaultSettings())
	p.waitListening(t)
	old := dialRaw(t, path)
	for _, r := range []record{offerRecord(1, 1), socketsRecord(t, []entry{web.entry}, web.fd)} {
		if _, _, err := old.WriteMsgUnix(r.data, unix.UnixRights(r.fds...), nil); err != nil {
			t.Fatal(err)
		}
	}
	in, err := p.result(t)
	if err != nil {
		t.Fatalf("Receive from a version 1 old process: %v", err)
	}
	if len(in.Sockets()) != 1 || in.State() != nil {
		t.Fatalf("got %d sockets and %d bytes of state, want 1 socket and no state", len(in.Sockets()), len(in.State()))
	}
}
