package bgp

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// testLogger returns a logger writing to t's log until t ends; GoBGP's
// goroutines may still log while the speaker stops, after which t.Log
// would panic.
func testLogger(t *testing.T) *slog.Logger {
	h := &testHandler{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() {
		h.mu.Lock()
		*h.done = true
		h.mu.Unlock()
	})
	return slog.New(h)
}

type testHandler struct {
	t     *testing.T
	mu    *sync.Mutex
	done  *bool
	attrs []slog.Attr
}

func (h *testHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if !*h.done {
		h.t.Log(b.String())
	}
	return nil
}

func (h *testHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }
