package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
)

// weightRule says whether a change takes a weight.
type weightRule int

const (
	noWeight       weightRule = iota
	requiredWeight            // from {"weight": N} or ?value=N
	optionalWeight            // the same, default 1
)

// action is one runtime change: a method and path suffix under
// /api/v1/services/{service}/backends/{backend}, and what it does.
type action struct {
	name   string
	method string
	suffix string
	weight weightRule
	apply  func(s State, service, backend string, weight int) error
}

// actions are the runtime changes the API offers.
var actions = []action{
	{"drain", http.MethodPost, "/drain", noWeight, func(s State, svc, be string, _ int) error {
		return s.SetEnabled(svc, be, false)
	}},
	{"enable", http.MethodPost, "/enable", noWeight, func(s State, svc, be string, _ int) error {
		return s.SetEnabled(svc, be, true)
	}},
	{"weight", http.MethodPost, "/weight", requiredWeight, State.SetWeight},
	{"add", http.MethodPut, "", optionalWeight, State.AddBackend},
	{"remove", http.MethodDelete, "", noWeight, func(s State, svc, be string, _ int) error {
		return s.RemoveBackend(svc, be)
	}},
}

// changeResult is the JSON answer to a change that took effect.
type changeResult struct {
	OK      bool   `json:"ok"`
	Action  string `json:"action"`
	Service string `json:"service"`
	Backend string `json:"backend"`
	// Current is the backend as it is now; nil once removed.
	Current *BackendStatus `json:"current,omitempty"`
}

// requestError is a malformed request, with the status to answer.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// badRequest returns a 400 requestError.
func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// httpStatus maps a change's error to the status that answers it.
func httpStatus(err error) int {
	if re, ok := errors.AsType[*requestError](err); ok {
		return re.status
	}
	switch {
	case errors.Is(err, ErrUnknownService), errors.Is(err, ErrUnknownBackend):
		return http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotSupported):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// change returns the handler of a, which applies it to the State and
// logs the outcome: an audit trail of every change an operator made.
func (h *Handler) change(a action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		svc, be := r.PathValue("service"), r.PathValue("backend")
		weight, err := readWeight(w, r, a.weight)
		if err == nil {
			err = a.apply(h.state, svc, be, weight)
		}
		h.audit(r, a, svc, be, weight, err)
		if err != nil {
			msg := err.Error()
			if _, ok := errors.AsType[*requestError](err); !ok {
				msg = fmt.Sprintf("%s backend %s of service %s: %v", a.name, be, svc, err)
			}
			writeError(w, httpStatus(err), msg)
			return
		}
		res := changeResult{OK: true, Action: a.name, Service: svc, Backend: be}
		if a.name != "remove" {
			res.Current = h.findBackend(svc, be)
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// audit logs a change: Info when it took effect or the request was
// wrong, Error when the State failed.
func (h *Handler) audit(r *http.Request, a action, svc, be string, weight int, err error) {
	attrs := []any{"action", a.name, "service", svc, "backend", be}
	if a.weight != noWeight && err == nil {
		attrs = append(attrs, "weight", weight)
	}
	// A change got here with the token whenever one is configured.
	auth := "none"
	if h.token != nil {
		auth = "token"
	}
	attrs = append(attrs, "remote", who(r), "auth", auth)
	level, msg := slog.LevelInfo, "admin: change applied"
	if err != nil {
		attrs = append(attrs, "status", httpStatus(err), "error", err.Error())
		msg = "admin: change refused"
		if httpStatus(err) == http.StatusInternalServerError {
			level, msg = slog.LevelError, "admin: change failed"
		}
	}
	h.log.Log(r.Context(), level, msg, attrs...)
}

// readWeight reads a change's weight from ?value=N or from the body
// {"weight": N}, which is bounded and must hold nothing else.
func readWeight(w http.ResponseWriter, r *http.Request, rule weightRule) (int, error) {
	if rule == noWeight {
		return 0, nil
	}
	query, inQuery, err := queryWeight(r)
	if err != nil {
		return 0, err
	}
	body, inBody, err := bodyWeight(w, r)
	switch {
	case err != nil:
		return 0, err
	case inQuery && inBody:
		return 0, badRequest("the weight is given twice, as ?value= and in the body; give it once")
	case inQuery:
		return query, nil
	case inBody:
		return body, nil
	case rule == optionalWeight:
		return 1, nil
	}
	return 0, badRequest(`no weight: send {"weight": N} or ?value=N`)
}

// queryWeight reads ?value=N.
func queryWeight(r *http.Request) (int, bool, error) {
	values, ok := r.URL.Query()["value"]
	if !ok {
		return 0, false, nil
	}
	if len(values) != 1 {
		return 0, false, badRequest("?value= is given %d times; give it once", len(values))
	}
	n, err := strconv.Atoi(values[0])
	if err != nil {
		return 0, false, badRequest("?value=%s is not an integer weight", quote(values[0]))
	}
	return n, true, nil
}

// bodyWeight reads {"weight": N} from a body of at most maxBodyBytes;
// an empty body holds no weight.
func bodyWeight(w http.ResponseWriter, r *http.Request) (int, bool, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return 0, false, &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes; send {\"weight\": N}", maxBodyBytes)}
	}
	if err != nil {
		return 0, false, badRequest("reading the body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return 0, false, nil
	}
	var req struct {
		Weight *int `json:"weight"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return 0, false, badRequest(`the body is not {"weight": N}: %v`, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, false, badRequest(`the body has more than one JSON value; send {"weight": N}`)
	}
	if req.Weight == nil {
		return 0, false, badRequest(`the body has no "weight"; send {"weight": N}`)
	}
	return *req.Weight, true, nil
}

// findBackend returns a copy of the backend's status, or nil. The State
// may have normalised the address (IPv6), so addresses compare as
// ip:port when both parse.
func (h *Handler) findBackend(svc, be string) *BackendStatus {
	want, wantErr := netip.ParseAddrPort(be)
	for _, s := range h.state.Status().Services {
		if s.Name != svc {
			continue
		}
		for _, b := range s.Backends {
			got, err := netip.ParseAddrPort(b.Addr)
			if b.Addr == be || (err == nil && wantErr == nil && got == want) {
				return &b
			}
		}
	}
	return nil
}

// serveStatus answers GET /status and /api/v1/status.
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.snapshot())
}

// snapshot returns the State's Status ready to encode: the version
// filled in, empty lists as [] rather than null, and rates that JSON
// can carry (NaN and infinities, from a rate over no time, become 0).
// It copies what it changes: the State may share its slices.
func (h *Handler) snapshot() Status {
	st := h.state.Status()
	if st.Version == "" {
		st.Version = h.version
	}
	st.Services = slices.Clone(st.Services)
	if st.Services == nil {
		st.Services = []ServiceStatus{}
	}
	for i := range st.Services {
		s := &st.Services[i]
		s.Listeners = nonNil(s.Listeners)
		s.RequestRate, s.ErrorRate = finite(s.RequestRate), finite(s.ErrorRate)
		s.Backends = nonNil(slices.Clone(s.Backends))
		for j := range s.Backends {
			b := &s.Backends[j]
			b.RequestRate, b.ErrorRate = finite(b.RequestRate), finite(b.ErrorRate)
		}
	}
	return st
}

// nonNil returns s, or an empty slice for nil.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// finite returns f, or 0 when f is NaN or infinite.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// methodNotAllowed answers a known API path's other methods.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use %s", r.Method, allow))
	})
}

// errorBody is the JSON answer to a request that failed.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers with status and {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{msg})
}

// writeJSON answers with status and v as indented JSON, which reads
// well from curl.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(errorBody{"encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}
