package accesslog

import (
	"path/filepath"
	"testing"
)

func benchmarkAppend(b *testing.B, format string) {
	f, r := mustParse(b, format), sampleRecord()
	buf := make([]byte, 0, MaxLine)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0], r)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendCombined(b *testing.B) { benchmarkAppend(b, "combined") }
func BenchmarkAppendJSON(b *testing.B)     { benchmarkAppend(b, "json") }
func BenchmarkAppendTemplate(b *testing.B) {
	benchmarkAppend(b, "$time_iso $client $method $host$path $status $duration $request_id")
}

// benchmarkLog logs to a file in a temporary directory, or to /dev/null,
// and reports the lines dropped because the writer fell behind.
func benchmarkLog(b *testing.B, path string, parallel bool) {
	if path == "" {
		path = filepath.Join(b.TempDir(), "access.log")
	}
	w, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	f, r := mustParse(b, "combined"), sampleRecord()
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			r := sampleRecord()
			for pb.Next() {
				w.Log(f, r)
			}
		})
	} else {
		for b.Loop() {
			w.Log(f, r)
		}
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w.Dropped())/float64(b.N), "dropped/op")
}

func BenchmarkLog(b *testing.B)         { benchmarkLog(b, "", false) }
func BenchmarkLogDevNull(b *testing.B)  { benchmarkLog(b, "/dev/null", false) }
func BenchmarkLogParallel(b *testing.B) { benchmarkLog(b, "", true) }
