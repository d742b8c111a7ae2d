package compress

import (
	"testing"

	"github.com/weir-lb/weir/pkg/l7/h1"
)

// head builds a request and response from field lists ("Name: value").
func head(method string, reqFields []string, status int, length int64, respFields []string) (*h1.Request, *h1.Response) {
	req := &h1.Request{Method: []byte(method), Target: []byte("/")}
	for i := 0; i+1 < len(reqFields); i += 2 {
		req.Header.Add(reqFields[i], reqFields[i+1])
	}
	resp := &h1.Response{Minor: 1, Status: status, ContentLength: length}
	for i := 0; i+1 < len(respFields); i += 2 {
		resp.Header.Add(respFields[i], respFields[i+1])
	}
	return req, resp
}

func TestChooseSkips(t *testing.T) {
	gz := []string{"Accept-Encoding", "gzip"}
	html := []string{"Content-Type", "text/html; charset=utf-8"}
	with := func(a []string, more ...string) []string { return append(append([]string(nil), a...), more...) }
	tests := []struct {
		name       string
		policy     Policy
		method     string
		reqFields  []string
		status     int
		length     int64
		respFields []string
		want       Encoding
	}{
		{"compressed", Policy{}, "GET", gz, 200, 5000, html, Gzip},
		{"unknown length", Policy{}, "GET", gz, 200, -1, html, Gzip},
		{"an error page too", Policy{}, "GET", gz, 404, 5000, html, Gzip},
		{"no Accept-Encoding", Policy{}, "GET", nil, 200, 5000, html, 0},
		{"HEAD", Policy{}, "HEAD", gz, 200, 5000, html, 0},
		{"CONNECT", Policy{}, "CONNECT", gz, 200, -1, html, 0},
		{"204", Policy{}, "GET", gz, 204, -1, html, 0},
		{"304", Policy{}, "GET", gz, 304, -1, html, 0},
		{"1xx", Policy{}, "GET", gz, 103, -1, html, 0},
		{"206", Policy{}, "GET", gz, 206, 5000, html, 0},
		{"Content-Range", Policy{}, "GET", gz, 200, 5000, with(html, "Content-Range", "bytes 0-4999/9000"), 0},
		{"already encoded", Policy{}, "GET", gz, 200, 5000, with(html, "Content-Encoding", "br"), 0},
		{"identity encoding", Policy{}, "GET", gz, 200, 5000, with(html, "Content-Encoding", "identity"), Gzip},
		{"no-transform", Policy{}, "GET", gz, 200, 5000, with(html, "Cache-Control", "public, No-Transform"), 0},
		{"request no-transform", Policy{}, "GET", with(gz, "Cache-Control", "no-transform"), 200, 5000, html, 0},
		{"upgrade request", Policy{}, "GET", with(gz, "Upgrade", "websocket"), 200, 5000, html, 0},
		{"no content type", Policy{}, "GET", gz, 200, 5000, nil, 0},
		{"image", Policy{}, "GET", gz, 200, 5000, []string{"Content-Type", "image/png"}, 0},
		{"json", Policy{}, "GET", gz, 200, 5000, []string{"Content-Type", "application/json"}, Gzip},
		{"suffix +json", Policy{}, "GET", gz, 200, 5000, []string{"Content-Type", "application/problem+json"}, Gzip},
		{"svg", Policy{}, "GET", gz, 200, 5000, []string{"Content-Type", "IMAGE/SVG+XML"}, Gzip},
		{"below MinSize", Policy{}, "GET", gz, 200, 1023, html, 0},
		{"at MinSize", Policy{}, "GET", gz, 200, 1024, html, Gzip},
		{"own MinSize", Policy{MinSize: 100}, "GET", gz, 200, 100, html, Gzip},
		{"no minimum", Policy{MinSize: -1}, "GET", gz, 200, 1, html, Gzip},
		{"empty body", Policy{MinSize: -1}, "GET", gz, 200, 0, html, 0},
		{"own types", Policy{Types: []string{"application/x-custom"}}, "GET", gz, 200, 5000, html, 0},
		{"own types match", Policy{Types: []string{"application/x-custom"}}, "GET", gz, 200, 5000,
			[]string{"Content-Type", "application/x-custom"}, Gzip},
		{"own encodings", Policy{Encodings: []Encoding{Brotli}}, "GET", gz, 200, 5000, html, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := head(tt.method, tt.reqFields, tt.status, tt.length, tt.respFields)
			if tt.reqFields != nil {
				if v, ok := req.Header.Get("Upgrade"); ok {
					req.Upgrade = v
				}
			}
			if got := tt.policy.Choose(req, resp); got != tt.want {
				t.Errorf("Choose = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRewriteHead(t *testing.T) {
	tests := []struct {
		name       string
		fields     []string
		wantVary   []string
		wantETag   string
		wantRanges bool
	}{
		{"plain", []string{"Content-Length", "5000"}, []string{"Accept-Encoding"}, "", false},
		{"vary merged", []string{"Vary", "Origin"}, []string{"Origin", "Accept-Encoding"}, "", false},
		{"vary present", []string{"Vary", "origin, accept-encoding"}, []string{"origin, accept-encoding"}, "", false},
		{"vary star", []string{"Vary", "*"}, []string{"*"}, "", false},
		{"strong etag", []string{"ETag", `"abc"`}, []string{"Accept-Encoding"}, `W/"abc"`, false},
		{"weak etag", []string{"ETag", `W/"abc"`}, []string{"Accept-Encoding"}, `W/"abc"`, false},
		{"accept-ranges dropped", []string{"Accept-Ranges", "bytes"}, []string{"Accept-Encoding"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp := head("GET", nil, 200, 5000, tt.fields)
			rewriteHead(&resp.Header, Brotli)
			if v, _ := resp.Header.Get("Content-Encoding"); string(v) != "br" {
				t.Errorf("Content-Encoding %q, want br", v)
			}
			if resp.Header.Has("Content-Length") {
				t.Error("Content-Length kept")
			}
			if resp.Header.Has("Accept-Ranges") != tt.wantRanges {
				t.Errorf("Accept-Ranges present: %v", resp.Header.Has("Accept-Ranges"))
			}
			var vary []string
			for v := range resp.Header.Values("Vary") {
				vary = append(vary, string(v))
			}
			if len(vary) != len(tt.wantVary) {
				t.Fatalf("Vary %q, want %q", vary, tt.wantVary)
			}
			for i := range vary {
				if vary[i] != tt.wantVary[i] {
					t.Errorf("Vary %q, want %q", vary, tt.wantVary)
				}
			}
			if etag, _ := resp.Header.Get("ETag"); string(etag) != tt.wantETag {
				t.Errorf("ETag %q, want %q", etag, tt.wantETag)
			}
		})
	}
}
