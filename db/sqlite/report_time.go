package sqlite

import (
	"time"
)

// parseDBTime is parseTime, reading the layout formatTime writes
// (2006-01-02T15:04:05.000000Z) without time.Parse, which was a large share
// of a report's event scan (measured with BenchmarkReportEvents and
// BenchmarkReportTime, see docs/benchmarks.md); anything else goes to
// parseTime, so the two always agree (FuzzReportTime).
func parseDBTime(s string) time.Time {
	if len(s) != len(timeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return parseTime(s)
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	us, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return parseTime(s) // what time.Parse makes of it
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC)
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
