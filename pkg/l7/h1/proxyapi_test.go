package h1

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestHasPrefix(t *testing.T) {
	preface := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	tests := []struct {
		name, input string
		want        bool
		wantErr     bool
	}{
		{"preface", string(preface) + "frames", true, false},
		{"short HTTP/1.0 request does not block", "GET / HTTP/1.0\r\n\r\n", false, false},
		{"differs at the first byte", "G", false, false},
		{"truncated preface", "PRI * HTTP/2.0\r\n", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per read: the answer must not depend on how the
			// input arrives, and a mismatch must not read to EOF.
			r := NewReader(iotest.OneByteReader(strings.NewReader(tc.input)))
			got, err := r.HasPrefix(preface)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("HasPrefix = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
			// Nothing was consumed: the whole input is still there.
			if !tc.wantErr {
				rest, _ := io.ReadAll(r)
				if string(rest) != tc.input {
					t.Fatalf("after HasPrefix the reader yields %q, want %q", rest, tc.input)
				}
			}
		})
	}
}

func TestWaitLeavesTheMessageToParse(t *testing.T) {
	r := NewReader(iotest.OneByteReader(strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
	if err := r.Wait(); err != nil || r.Buffered() == 0 {
		t.Fatalf("Wait = %v with %d bytes buffered, want a byte", err, r.Buffered())
	}
	var req Request
	if err := r.ReadRequest(&req, Limits{}); err != nil || string(req.Target) != "/" {
		t.Fatalf("ReadRequest after Wait = %v, target %q", err, req.Target)
	}
	if err := r.Wait(); err != io.EOF {
		t.Fatalf("Wait at end of input = %v, want io.EOF", err)
	}
}

func TestShedKeepsWhatIsBuffered(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		readHead bool // read the first request before shedding
		wantShed bool
	}{
		{"nothing read yet: no buffer to shed", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", false, false},
		{"buffer drained: shed", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", true, true},
		{"pipelined request buffered: kept", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.input))
			var req Request
			if tc.readHead {
				if err := r.ReadRequest(&req, Limits{}); err != nil {
					t.Fatalf("ReadRequest = %v", err)
				}
			}
			buffered := r.Buffered()
			if got := r.Shed(); got != tc.wantShed {
				t.Fatalf("Shed = %v, want %v", got, tc.wantShed)
			}
			if r.Buffered() != buffered {
				t.Fatalf("Shed changed Buffered from %d to %d", buffered, r.Buffered())
			}
			// The Reader goes on as if nothing happened.
			err := r.ReadRequest(&req, Limits{})
			switch {
			case tc.readHead && strings.Count(tc.input, "GET") == 1:
				if err != io.EOF {
					t.Fatalf("ReadRequest after Shed at end of input = %v, want io.EOF", err)
				}
			case err != nil:
				t.Fatalf("ReadRequest after Shed = %v", err)
			}
		})
	}
}

func TestDelAtAndSetValue(t *testing.T) {
	var h Header
	h.Add("A", "1")
	h.Add("B", "2")
	h.Add("C", "3")
	h.DelAt(1)
	h.SetValue("A", []byte("one"))
	var got []string
	for i := 0; i < h.Len(); i++ {
		n, v := h.At(i)
		got = append(got, string(n)+"="+string(v))
	}
	if strings.Join(got, ",") != "A=one,C=3" {
		t.Fatalf("fields %v, want A=one,C=3", got)
	}
}
