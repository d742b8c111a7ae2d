package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// loopbackKey carries, in a request's context, whether Serve was told
// that only this host can reach the listener.
type loopbackKey struct{}

// connKey carries a request's net.Conn, to name the peer of a Unix
// socket in the log.
type connKey struct{}

// reach is how a request arrived.
type reach struct {
	// loopback: only this host could send it (loopback or Unix socket).
	loopback bool
	// unix: it came over a Unix socket, which no browser can open.
	unix bool
}

// reachOf tells how r arrived. A request served through Serve has the
// listener's flag; one handed to ServeHTTP by another server is judged
// by the local address of its connection, and with none it counts as
// reachable from anywhere.
func reachOf(r *http.Request) reach {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	loopback, served := r.Context().Value(loopbackKey{}).(bool)
	if !served {
		loopback = isLocalAddr(local)
	}
	return reach{loopback: loopback, unix: local != nil && local.Network() == "unix"}
}

// isLocalAddr reports whether only this host can reach addr.
func isLocalAddr(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// safeMethod reports whether a method only reads.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// authorize applies the security model to r and answers it when it
// fails: the Host check on loopback, the token, then the cross-origin
// check. README.md explains each.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) bool {
	at := reachOf(r)
	if at.loopback && !at.unix && !loopbackHost(r.Host) {
		h.refuse(w, r, http.StatusForbidden, "Host "+quote(r.Host)+" does not name this host's loopback: address the endpoint as localhost, 127.0.0.1 or [::1]", "Host is not loopback (DNS rebinding?)")
		return false
	}
	if !safeMethod(r.Method) || !at.loopback {
		if !h.checkToken(w, r, at) {
			return false
		}
	}
	if err := h.cross.Check(r); err != nil {
		h.refuse(w, r, http.StatusForbidden, "cross-origin request refused: a page on another origin cannot change this endpoint", "cross-origin request")
		return false
	}
	return true
}

// checkToken answers r with 401 unless it presents the configured token.
func (h *Handler) checkToken(w http.ResponseWriter, r *http.Request, at reach) bool {
	if h.token == nil {
		if at.loopback {
			return true
		}
		// Only reachable through ServeHTTP: Serve refuses the listener.
		h.refuse(w, r, http.StatusForbidden, "this address is reachable from other hosts and no token is configured", "no token configured")
		return false
	}
	presented, ok := bearer(r)
	if ok {
		sum := sha256.Sum256([]byte(presented))
		if subtle.ConstantTimeCompare(sum[:], h.token[:]) == 1 {
			return true
		}
	}
	challenge, reason := `Bearer realm="weir admin"`, "missing token"
	if ok {
		challenge, reason = `Bearer realm="weir admin", error="invalid_token"`, "wrong token"
	}
	w.Header().Set("WWW-Authenticate", challenge)
	h.refuse(w, r, http.StatusUnauthorized, reason+`: send "Authorization: Bearer <token>" with the admin token`, reason)
	return false
}

// bearer returns the token of r's "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// refuse answers r with status and msg and logs why at Warn: who, what,
// never the presented credentials.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, msg, reason string) {
	h.log.Warn("admin: request refused", "reason", reason, "remote", who(r),
		"method", r.Method, "path", r.URL.Path, "host", r.Host, "status", status)
	writeError(w, status, msg)
}

// loopbackHost reports whether host, a Host header with or without a
// port, names this host's loopback: a loopback IP, localhost or a name
// under .localhost, which browsers resolve to loopback themselves. A
// page that rebinds its own DNS name to 127.0.0.1 still sends that name.
// An empty Host (HTTP/1.0) comes from no browser, and passes.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// who names r's client for the log: its address, or for a Unix socket
// the peer's uid and pid.
func who(r *http.Request) string {
	if c, ok := r.Context().Value(connKey{}).(*net.UnixConn); ok {
		if cred := peerCred(c); cred != "" {
			return "unix " + cred
		}
		return "unix"
	}
	return r.RemoteAddr
}

// quote quotes s for a message, bounded so that a huge header cannot
// bloat a response.
func quote(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
