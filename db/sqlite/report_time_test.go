package sqlite

import (
	"testing"
	"time"
)

// BenchmarkReportTime measures why report_time.go exists: parseDBTime, the
// report scan's parser of the one layout the database writes, against
// parseTime (time.Parse with that layout), on times as the database stores
// them. Each iteration parses one time; the figures are in
// docs/benchmarks.md.
//
//	go test ./db/sqlite -run '^$' -bench ReportTime -count 5
func BenchmarkReportTime(b *testing.B) {
	base := time.Date(2026, 11, 22, 9, 30, 0, 123456000, time.UTC)
	var texts [1024]string
	for i := range texts {
		texts[i] = formatTime(base.Add(time.Duration(i) * (7919*time.Second + 3*time.Microsecond)))
	}
	for _, p := range []struct {
		name  string
		parse func(string) time.Time
	}{{"parseDBTime", parseDBTime}, {"time.Parse", parseTime}} {
		b.Run(p.name, func(b *testing.B) {
			var last time.Time
			for i := 0; b.Loop(); i++ {
				last = p.parse(texts[i%len(texts)])
			}
			if want := parseTime(texts[0]); p.parse(texts[0]) != want || last.IsZero() {
				b.Fatalf("%s: %v, want %v", p.name, p.parse(texts[0]), want)
			}
		})
	}
}
