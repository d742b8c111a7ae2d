package admin

import (
	"fmt"
	"strings"
)

// LimitsStatus is an HTTP service's overload protection: the limits
// configured (key limits, and the listeners' max_connections) and what
// each refused since the service started.
type LimitsStatus struct {
	// MaxRequestBody is the largest request body in bytes; 0: none.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`
	// MaxHeaderBytes and MaxHeaders bound a request head (defaults
	// included).
	MaxHeaderBytes int `json:"max_header_bytes"`
	MaxHeaders     int `json:"max_headers"`
	// Rate is each client's rate, "100/s burst 200"; empty: none.
	Rate string `json:"rate,omitempty"`
	// RateClients is the number of clients the rate limit tracks now;
	// MaxClients its bound.
	RateClients int `json:"rate_clients,omitempty"`
	MaxClients  int `json:"max_clients,omitempty"`
	// MaxClientConnections is each client's connection limit; 0: none.
	MaxClientConnections int `json:"max_client_connections,omitempty"`
	// Limited counts the refusals of each limit: rate (429), body (413),
	// header (431) and client_connections (connections closed).
	Limited map[string]uint64 `json:"limited"`
	// Listeners are the listeners with max_connections.
	Listeners []ListenerLimitStatus `json:"listeners,omitempty"`
}

// ListenerLimitStatus is one listener's connection limit.
type ListenerLimitStatus struct {
	Addr string `json:"addr"`
	// MaxConnections is its limit, Connections the connections open.
	MaxConnections int `json:"max_connections"`
	Connections    int `json:"connections"`
	// Limited counts the times it was found full and stopped accepting.
	Limited uint64 `json:"limited"`
}

// Summary words the configured limits for the status page:
// "rate 100/s burst 200 · body 10 MiB · head 32 KiB, 100 fields".
func (l *LimitsStatus) Summary() string {
	var parts []string
	if l.Rate != "" {
		parts = append(parts, "rate "+l.Rate)
	}
	if l.MaxClientConnections > 0 {
		parts = append(parts, fmt.Sprintf("%d connections a client", l.MaxClientConnections))
	}
	if l.MaxRequestBody > 0 {
		parts = append(parts, "body "+iecBytes(uint64(l.MaxRequestBody)))
	}
	parts = append(parts, fmt.Sprintf("head %s, %d fields", iecBytes(uint64(l.MaxHeaderBytes)), l.MaxHeaders))
	for _, ls := range l.Listeners {
		parts = append(parts, fmt.Sprintf("%s %d/%d connections", ls.Addr, ls.Connections, ls.MaxConnections))
	}
	return strings.Join(parts, " · ")
}

// Refused words the refusal counts for the status page, in a fixed
// order: "rate 3 · body 0 · header 1 · client_connections 0".
func (l *LimitsStatus) Refused() string {
	var parts []string
	for _, name := range []string{"rate", "body", "header", "client_connections"} {
		parts = append(parts, fmt.Sprintf("%s %d", name, l.Limited[name]))
	}
	var held uint64
	for _, ls := range l.Listeners {
		held += ls.Limited
	}
	if len(l.Listeners) > 0 {
		parts = append(parts, fmt.Sprintf("listener full %d", held))
	}
	return strings.Join(parts, " · ")
}
