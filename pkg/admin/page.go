package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// page holds the status page: the template and its inline style and
// script, kept in files of their own so that they read as CSS and
// JavaScript and so that their hashes can go into the page's
// Content-Security-Policy.
//
//go:embed page
var pageFS embed.FS

// pageAssets are the inline style and script, and the CSP that allows
// exactly them and nothing else: no other script, no other origin.
type pageAssets struct {
	css template.CSS
	js  template.JS
	csp string
}

// pageData is what the template renders.
type pageData struct {
	Status Status
	CSS    template.CSS
	JS     template.JS
}

// loadPage parses the embedded template and hashes its assets.
func loadPage() (*template.Template, pageAssets, error) {
	css, err := pageFS.ReadFile("page/style.css")
	if err != nil {
		return nil, pageAssets{}, fmt.Errorf("admin: status page: %w", err)
	}
	js, err := pageFS.ReadFile("page/refresh.js")
	if err != nil {
		return nil, pageAssets{}, fmt.Errorf("admin: status page: %w", err)
	}
	t, err := template.New("status.html").Funcs(pageFuncs()).ParseFS(pageFS, "page/status.html")
	if err != nil {
		return nil, pageAssets{}, fmt.Errorf("admin: status page: %w", err)
	}
	csp := fmt.Sprintf("default-src 'none'; style-src '%s'; script-src '%s'; connect-src 'self'; img-src data:; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'", cspHash(css), cspHash(js))
	return t, pageAssets{css: template.CSS(css), js: template.JS(js), csp: csp}, nil
}

// cspHash is the CSP source that allows an inline element with text b.
func cspHash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// servePage answers GET / with the status page, rendered in full before
// a byte is sent, so that a failure is a clean 500.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	data := pageData{Status: h.snapshot(), CSS: h.assets.css, JS: h.assets.js}
	if err := h.page.Execute(&buf, data); err != nil {
		h.log.Error("admin: rendering the status page", "error", err)
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", h.assets.csp)
	w.Write(buf.Bytes())
}

// pageFuncs returns the functions that format values for the page.
func pageFuncs() template.FuncMap {
	return template.FuncMap{
		"isL4":      func(s ServiceStatus) bool { return s.Kind == "l4" || s.L4 != nil },
		"health":    health,
		"state":     backendState,
		"stateText": backendStateText,
		"age":       age,
		"latency":   latency,
		"uptime":    uptime,
		"rate":      rate,
		"bytes":     iecBytes,
		"clock":     func(t time.Time) string { return t.Format("15:04:05") },
		"iso":       func(t time.Time) string { return t.Format(time.RFC3339) },
		"join":      func(s []string) string { return strings.Join(s, ", ") },
	}
}

// health is a backend's health as the page and its data-health say it.
func health(b BackendStatus) string {
	if b.Healthy {
		return "up"
	}
	return "down"
}

// backendState says whether a backend takes traffic: enabled, drained
// by an operator, disabled by discovery, or ejected by passive health. An
// operator's drain or discovery's choice outlasts an ejection, so it is
// what a backend out for both reasons shows.
func backendState(b BackendStatus) string {
	switch {
	case b.Enabled && b.Ejected:
		return "ejected"
	case b.Enabled:
		return "enabled"
	case b.Drained:
		return "drained"
	}
	return "disabled"
}

// backendStateText is backendState as the page writes it: an ejection
// says when it ends at the latest.
func backendStateText(b BackendStatus) string {
	s := backendState(b)
	if s == "ejected" && !b.EjectedUntil.IsZero() {
		s += " until " + b.EjectedUntil.Format("15:04:05")
	}
	return s
}

// age says how long before now t was, or "never" for the zero time.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := max(now.Sub(t), 0)
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	}
	return d.Round(time.Second).String() + " ago"
}

// latency rounds d to three significant digits or so.
func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// uptime says how long the server has served.
func uptime(started, now time.Time) string {
	if started.IsZero() {
		return "–"
	}
	return max(now.Sub(started), 0).Round(time.Second).String()
}

// rate formats a per-second rate with the precision it deserves.
func rate(f float64) string {
	f = finite(f)
	switch {
	case f == 0:
		return "0"
	case f < 10:
		return fmt.Sprintf("%.2f", f)
	case f < 1000:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.0f", f)
}

// iecBytes formats a byte count in binary units.
func iecBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
