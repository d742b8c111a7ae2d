package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Handler.
type Options struct {
	// State is the running server (required).
	State State
	// Gatherer is what GET /metrics exposes; nil: no /metrics route.
	Gatherer prometheus.Gatherer
	// Token is the bearer token that changes (and, on an address other
	// than loopback, every request) must present. Surrounding white space
	// is ignored, so a token file ending in a newline works; nil: no
	// token.
	Token []byte
	// Logger receives a line per change and per refused request; nil:
	// slog.Default().
	Logger *slog.Logger
	// Version is shown when the State's Status leaves it empty.
	Version string
}

// Limits that keep a slow or hostile client from holding the endpoint:
// an admin endpoint must not be a slowloris target.
const (
	// maxHeaderBytes bounds a request's head; the API needs little.
	maxHeaderBytes = 16 << 10
	// maxBodyBytes bounds a request body ({"weight": N} is a dozen bytes).
	maxBodyBytes = 4 << 10
	// maxMetricsInFlight bounds concurrent scrapes; more get 503.
	maxMetricsInFlight = 8
)

// timeouts are the http.Server timeouts of every listener; a field of
// the Handler so that tests can shorten them.
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultTimeouts = timeouts{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	write:      30 * time.Second,
	idle:       60 * time.Second,
}

// Handler is the admin endpoint: an http.Handler, and the servers that
// run it on listeners (Serve, Shutdown, Close).
type Handler struct {
	state    State
	version  string
	log      *slog.Logger
	token    *[sha256.Size]byte // nil: no token
	mux      *http.ServeMux
	cross    *http.CrossOriginProtection
	page     *template.Template
	assets   pageAssets
	timeouts timeouts

	mu      sync.Mutex
	servers map[*http.Server]*serving
	closed  bool
	// conns counts the connections every server accepted and has not
	// closed (nor hijacked): Shutdown waits for them.
	conns sync.WaitGroup
}

// serving is one Serve call: its listener, which Shutdown closes, and
// done, closed once its accept loop returned, after which every
// connection it accepted is counted in conns.
type serving struct {
	ln   net.Listener
	done chan struct{}
}

var _ http.Handler = (*Handler)(nil)

// New returns the admin endpoint for opts.State.
func New(opts Options) (*Handler, error) {
	if opts.State == nil {
		return nil, errors.New("admin: Options.State is nil; the endpoint needs the running server to report on")
	}
	token, err := hashToken(opts.Token)
	if err != nil {
		return nil, err
	}
	page, assets, err := loadPage()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		state:    opts.State,
		version:  opts.Version,
		log:      opts.Logger,
		token:    token,
		mux:      http.NewServeMux(),
		cross:    http.NewCrossOriginProtection(),
		page:     page,
		assets:   assets,
		timeouts: defaultTimeouts,
		servers:  make(map[*http.Server]*serving),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.routes(opts.Gatherer)
	return h, nil
}

// hashToken checks a configured token and returns its SHA-256, which is
// all the Handler keeps: comparing digests in constant time reveals
// nothing, not even the token's length.
func hashToken(token []byte) (*[sha256.Size]byte, error) {
	if token == nil {
		return nil, nil
	}
	token = bytes.TrimSpace(token)
	if len(token) == 0 {
		return nil, errors.New("admin: the token is empty; write one to the token file (head -c 32 /dev/urandom | base64) or configure none")
	}
	for i, c := range token {
		if c < 0x21 || c > 0x7e {
			return nil, fmt.Errorf("admin: the token has byte %#02x at offset %d; an HTTP header can carry printable ASCII only, so no client could present it", c, i)
		}
	}
	sum := sha256.Sum256(token)
	return &sum, nil
}

// routes registers every route. Patterns without a method answer the
// other methods of an API path with a JSON 405, which ServeMux would
// answer in plain text.
func (h *Handler) routes(gatherer prometheus.Gatherer) {
	h.mux.HandleFunc("GET /{$}", h.servePage)
	h.mux.HandleFunc("GET /status", h.serveStatus)
	h.mux.HandleFunc("GET /api/v1/status", h.serveStatus)
	h.mux.Handle("/api/v1/status", methodNotAllowed("GET, HEAD"))
	if gatherer != nil {
		h.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
			EnableOpenMetrics:   true,
			ErrorLog:            promLogger{h.log},
			MaxRequestsInFlight: maxMetricsInFlight,
		}))
	}
	const backend = "/api/v1/services/{service}/backends/{backend}"
	for _, a := range actions {
		h.mux.HandleFunc(a.method+" "+backend+a.suffix, h.change(a))
	}
	h.mux.Handle(backend, methodNotAllowed("PUT, DELETE"))
	for _, suffix := range []string{"/drain", "/enable", "/weight"} {
		h.mux.Handle(backend+suffix, methodNotAllowed("POST"))
	}
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API route %s; README.md lists them", r.URL.Path))
	})
}

// ServeHTTP answers one request, once it passed the security checks.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	if !h.authorize(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// Serve serves the endpoint on l until Shutdown or Close, and then
// returns http.ErrServerClosed; like http.Server.Serve, it closes l.
//
// loopback says that only this host can reach l (a loopback address or
// a Unix socket): reads need no token there. Serve refuses a loopback
// claim for any other address, and an address other hosts can reach
// when no token is configured, rather than expose the endpoint.
func (h *Handler) Serve(l net.Listener, loopback bool) error {
	if err := h.checkListener(l.Addr(), loopback); err != nil {
		l.Close()
		return err
	}
	srv := h.newServer(loopback)
	sv := &serving{ln: l, done: make(chan struct{})}
	if !h.track(srv, sv) {
		l.Close()
		return http.ErrServerClosed
	}
	err := srv.Serve(l)
	close(sv.done)
	if h.isClosed() && errors.Is(err, net.ErrClosed) {
		// Shutdown closed the listener itself.
		return http.ErrServerClosed
	}
	return err
}

// checkListener refuses the two configurations that would expose the
// endpoint to other hosts without a token.
func (h *Handler) checkListener(addr net.Addr, loopback bool) error {
	local := isLocalAddr(addr)
	if loopback && !local {
		return fmt.Errorf("admin: %s is reachable from other hosts, not loopback; serve it with loopback=false (and a token)", addr)
	}
	if !loopback && h.token == nil {
		return fmt.Errorf("admin: serving %s as reachable from other hosts needs a token (admin.token_file); without one, listen on 127.0.0.1, [::1] or a unix: socket only", addr)
	}
	return nil
}

// newServer returns the http.Server for one listener; its requests
// carry the listener's loopback flag and their connection.
func (h *Handler) newServer(loopback bool) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: h.timeouts.readHeader,
		ReadTimeout:       h.timeouts.read,
		WriteTimeout:      h.timeouts.write,
		IdleTimeout:       h.timeouts.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), loopbackKey{}, loopback)
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: h.countConn,
	}
}

// countConn keeps conns: the server reports StateNew in its accept loop,
// before Serve can return, and StateClosed or StateHijacked once for
// every connection.
func (h *Handler) countConn(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		h.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		h.conns.Done()
	}
}

// track adds srv, serving sv, to the servers Shutdown stops, unless it
// already ran.
func (h *Handler) track(srv *http.Server, sv *serving) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.servers[srv] = sv
	return true
}

func (h *Handler) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// closeAll marks the Handler closed and returns its servers.
func (h *Handler) closeAll() map[*http.Server]*serving {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	servers := make(map[*http.Server]*serving, len(h.servers))
	for srv, sv := range h.servers {
		servers[srv] = sv
	}
	return servers
}

// Shutdown stops every listener and waits, until ctx is done, for the
// connections already accepted: each is answered the request it carries,
// or sends next, with Connection: close, and an idle one is closed. Later
// Serve calls return http.ErrServerClosed.
//
// http.Server.Shutdown alone would not do: a connection it accepted
// whose request it reads only once shutting down is closed unanswered,
// and its client reads EOF. In an upgrade, when the successor accepts on
// the same listening socket, that is the connection a client opened just
// before the old weir let go, and it expects an answer.
func (h *Handler) Shutdown(ctx context.Context) error {
	servers := h.closeAll()
	for srv, sv := range servers {
		// Closes the idle connections; the others close after their
		// current response.
		srv.SetKeepAlivesEnabled(false)
		sv.ln.Close()
	}
	for _, sv := range servers {
		select {
		case <-sv.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Every connection accepted is counted: wait for them to close.
	drained := make(chan struct{})
	go func() { h.conns.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		return ctx.Err()
	}
	var errs []error
	for srv := range servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Close stops every listener and connection at once.
func (h *Handler) Close() error {
	var errs []error
	for srv := range h.closeAll() {
		errs = append(errs, srv.Close())
	}
	return errors.Join(errs...)
}

// promLogger hands promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

// Println logs one error of gathering or encoding metrics.
func (p promLogger) Println(v ...any) {
	p.log.Error("admin: serving metrics", "error", fmt.Sprint(v...))
}
