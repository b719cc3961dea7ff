package views

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/doorledger/doorledger"
)

func TestChartMax(t *testing.T) {
	for _, tt := range []struct{ in, want int }{
		{0, 2}, {1, 2}, {2, 2}, {3, 4}, {7, 8}, {9, 10}, {10, 10},
		{11, 20}, {41, 60}, {99, 100}, {101, 200}, {1000, 1000}, {1001, 2000},
	} {
		if got := chartMax(tt.in); got != tt.want {
			t.Errorf("chartMax(%d) = %d, want %d", tt.in, got, tt.want)
		}
		if got := chartMax(tt.in); got/2*2 != got {
			t.Errorf("chartMax(%d) = %d: its half is not a whole number", tt.in, got)
		}
	}
}

func TestShortDate(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2026-03-08", "Mar 8"},
		{"2026-12-31", "Dec 31"},
		{"not a date", "not a date"},
		{"", ""},
	} {
		if got := shortDate(tt.in); got != tt.want {
			t.Errorf("shortDate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFnum(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{0, "0.0"}, {2, "2.0"}, {130, "130.0"}, {1.26, "1.3"}, {-4, "-4.0"}} {
		if got := fnum(tt.in); got != tt.want {
			t.Errorf("fnum(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// chartDays makes n days ending 2026-03-14, each with the counts of f.
func chartDays(n int, f func(i int) (granted, denied, anomalous int)) []doorledger.UnlockDay {
	days := make([]doorledger.UnlockDay, n)
	for i := range days {
		g, d, a := f(i)
		days[i] = doorledger.UnlockDay{Date: fmt.Sprintf("2026-03-%02d", 14-n+1+i), Granted: g, Denied: d, Anomalous: a}
	}
	return days
}

func TestNewChart(t *testing.T) {
	type bar struct {
		series, date string
		y, h         string
	}
	for _, tt := range []struct {
		name  string
		days  []doorledger.UnlockDay
		max   int
		total int
		ticks []string
		grid  []string
		dates []string
		bars  []bar // some of the bars, found by series and date
	}{{
		name:  "no days",
		max:   2,
		ticks: []string{"0", "1", "2"},
		grid:  []string{"140.0", "75.0", "10.0"},
	}, {
		name:  "quiet days: the scale stays at 2, nothing drawn",
		days:  chartDays(3, func(int) (int, int, int) { return 0, 0, 0 }),
		max:   2,
		ticks: []string{"0", "1", "2"},
		grid:  []string{"140.0", "75.0", "10.0"},
		dates: []string{"Mar 14"},
		bars:  []bar{{"granted", "2026-03-14", "140.0", "0.0"}},
	}, {
		name:  "the tallest bar fills the plot; anomalous are not added to the total",
		days:  chartDays(2, func(i int) (int, int, int) { return 10 - 6*i, 1 - i, 2 * i }),
		max:   10,
		total: 15,
		ticks: []string{"0", "5", "10"},
		grid:  []string{"140.0", "75.0", "10.0"},
		dates: []string{"Mar 14"},
		bars: []bar{
			{"granted", "2026-03-13", "10.0", "130.0"},
			{"denied", "2026-03-13", "127.0", "13.0"},
			{"anomalous", "2026-03-13", "140.0", "0.0"},
			{"granted", "2026-03-14", "88.0", "52.0"},
			{"anomalous", "2026-03-14", "114.0", "26.0"},
		},
	}, {
		name:  "a single event among thousands stays visible",
		days:  chartDays(1, func(int) (int, int, int) { return 1500, 0, 1 }),
		max:   2000,
		total: 1500,
		ticks: []string{"0", "1000", "2000"},
		grid:  []string{"140.0", "75.0", "10.0"},
		dates: []string{"Mar 14"},
		bars: []bar{
			{"granted", "2026-03-14", "42.5", "97.5"},
			{"denied", "2026-03-14", "140.0", "0.0"},
			{"anomalous", "2026-03-14", "138.5", "1.5"},
		},
	}, {
		name:  "dates every seventh day counting back from the last",
		days:  chartDays(14, func(i int) (int, int, int) { return i, 0, 0 }),
		max:   20,
		total: 91,
		ticks: []string{"0", "10", "20"},
		grid:  []string{"140.0", "75.0", "10.0"},
		dates: []string{"Mar 7", "Mar 14"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			m := newChart(tt.days)
			if got, want := m.ViewBox, "0 0 480 196"; got != want {
				t.Errorf("ViewBox = %q, want %q", got, want)
			}
			if m.Max != tt.max || m.Total != tt.total {
				t.Errorf("Max, Total = %d, %d; want %d, %d", m.Max, m.Total, tt.max, tt.total)
			}
			var ticks, dates []string
			for _, x := range m.Ticks {
				ticks = append(ticks, x.Text)
			}
			for _, x := range m.Dates {
				dates = append(dates, x.Text)
			}
			if !slices.Equal(ticks, tt.ticks) || !slices.Equal(m.Grid, tt.grid) || !slices.Equal(dates, tt.dates) {
				t.Errorf("ticks %q, grid %q, dates %q; want %q, %q, %q", ticks, m.Grid, dates, tt.ticks, tt.grid, tt.dates)
			}
			if got, want := len(m.Bars), 3*len(tt.days); got != want {
				t.Fatalf("%d bars, want %d (three per day)", got, want)
			}
			prevX := -1.0
			for _, b := range m.Bars {
				x, _ := strconv.ParseFloat(b.X, 64)
				y, _ := strconv.ParseFloat(b.Y, 64)
				h, _ := strconv.ParseFloat(b.H, 64)
				w, _ := strconv.ParseFloat(b.W, 64)
				if x <= prevX || x < chartLeft || x+w > chartWidth-chartRight {
					t.Errorf("bar %s %s at x %s width %s: out of order or outside the plot", b.Series, b.Date, b.X, b.W)
				}
				prevX = x
				if y < chartTop || y+h > chartTop+chartPlot+0.05 || y+h < chartTop+chartPlot-0.05 {
					t.Errorf("bar %s %s: y %s height %s does not stand on the base line", b.Series, b.Date, b.Y, b.H)
				}
				if want := fmt.Sprintf("%s: %d %s", b.Date, b.Value, b.Series); b.Title != want {
					t.Errorf("bar title %q, want %q", b.Title, want)
				}
			}
			for _, want := range tt.bars {
				i := slices.IndexFunc(m.Bars, func(b chartBar) bool { return b.Series == want.series && b.Date == want.date })
				if i < 0 {
					t.Errorf("no %s bar on %s", want.series, want.date)
					continue
				}
				if b := m.Bars[i]; b.Y != want.y || b.H != want.h {
					t.Errorf("%s bar on %s: y %s height %s, want y %s height %s", want.series, want.date, b.Y, b.H, want.y, want.h)
				}
			}
		})
	}
}
