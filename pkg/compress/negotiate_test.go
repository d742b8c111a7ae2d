package compress

import "testing"

func TestNegotiate(t *testing.T) {
	all := []Encoding{Zstd, Brotli, Gzip}
	tests := []struct {
		name   string
		prefs  []Encoding
		values []string // nil: no Accept-Encoding field
		want   Encoding
	}{
		{"no field", all, nil, 0},
		{"empty field: identity only", all, []string{""}, 0},
		{"browser list, server order wins", all, []string{"gzip, deflate, br, zstd"}, Zstd},
		{"only gzip", all, []string{"gzip"}, Gzip},
		{"x-gzip is gzip", all, []string{"x-gzip"}, Gzip},
		{"case-insensitive", all, []string{"GZIP, BR"}, Brotli},
		{"higher q wins over server order", all, []string{"zstd;q=0.5, gzip;q=0.9"}, Gzip},
		{"q=0 refuses", all, []string{"zstd;q=0, br;q=0, gzip"}, Gzip},
		{"every one refused", all, []string{"zstd;q=0, br;q=0, gzip;q=0"}, 0},
		{"q with three decimals", all, []string{"gzip;q=0.001, br;q=0.002"}, Brotli},
		{"q spelled Q with spaces", all, []string{"gzip ; Q = 0.8 , br;q=0.7"}, Gzip},
		{"malformed q ignores the element", all, []string{"zstd;q=2, br;q=abc, gzip;q=0.5"}, Gzip},
		{"q of 1.000", all, []string{"br;q=1.000"}, Brotli},
		{"q of 1.001 is malformed", all, []string{"br;q=1.001"}, 0},
		{"wildcard", all, []string{"*"}, Zstd},
		{"wildcard refused, named accepted", all, []string{"*;q=0, br"}, Brotli},
		{"named refused, wildcard accepted", all, []string{"zstd;q=0, *"}, Brotli},
		{"identity preferred", all, []string{"gzip;q=0.5, identity"}, 0},
		{"identity equal: compress", all, []string{"gzip, identity"}, Gzip},
		{"identity refused", all, []string{"identity;q=0, gzip;q=0.1"}, Gzip},
		{"wildcard weighs unnamed identity", all, []string{"gzip;q=0.2, *;q=0.8"}, Zstd},
		{"unknown codings only", all, []string{"deflate, compress, exi"}, 0},
		{"several fields", all, []string{"deflate", "gzip;q=0.4", "br;q=0.6"}, Brotli},
		{"first mention counts", all, []string{"gzip;q=0, gzip"}, 0},
		{"policy order", []Encoding{Gzip, Brotli}, []string{"zstd, br, gzip"}, Gzip},
		{"policy lacks the client's", []Encoding{Gzip}, []string{"zstd, br"}, 0},
		{"stray commas and spaces", all, []string{" , ,gzip , "}, Gzip},
		{"other parameters", all, []string{"br;level=3;q=0.3, gzip;q=0.2"}, Brotli},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var values [][]byte
			for _, v := range tt.values {
				values = append(values, []byte(v))
			}
			if got := negotiate(tt.prefs, values); got != tt.want {
				t.Errorf("negotiate(%v, %q) = %v, want %v", tt.prefs, tt.values, got, tt.want)
			}
		})
	}
}

func TestParseEncoding(t *testing.T) {
	for _, e := range []Encoding{Zstd, Brotli, Gzip} {
		got, err := ParseEncoding(e.String())
		if err != nil || got != e {
			t.Errorf("ParseEncoding(%q) = %v, %v", e.String(), got, err)
		}
	}
	if _, err := ParseEncoding("deflate"); err == nil {
		t.Error("ParseEncoding(deflate) succeeded")
	}
}

func TestNegotiateAllocatesNothing(t *testing.T) {
	values := [][]byte{[]byte("gzip;q=0.8, deflate, br;q=0.9, zstd;q=0.1, *;q=0")}
	prefs := []Encoding{Zstd, Brotli, Gzip}
	if n := testing.AllocsPerRun(100, func() { negotiate(prefs, values) }); n != 0 {
		t.Errorf("negotiate allocates %v times", n)
	}
}
