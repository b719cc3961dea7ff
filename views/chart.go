package views

import (
	"fmt"
	"strconv"
	"time"

	"github.com/doorledger/doorledger"
)

// The chart's geometry, in the SVG's own units: it scales to its box, at
// most 40rem wide (class narrow), so its text stays readable on a phone.
const (
	chartWidth  = 480
	chartHeight = 196
	chartLeft   = 30 // room for the counts
	chartRight  = 20 // room for the last date
	chartTop    = 10
	chartPlot   = 130 // height of the bars' area
	chartLabelY = 158 // baseline of the dates
	chartKeyY   = 186 // baseline of the legend
	chartFont   = "12"
)

// The series of the chart, in drawing order.
var chartSeries = []struct {
	name, color string
	value       func(doorledger.UnlockDay) int
}{
	{"granted", "#2e7d32", func(d doorledger.UnlockDay) int { return d.Granted }},
	{"denied", "#ef6c00", func(d doorledger.UnlockDay) int { return d.Denied }},
	{"anomalous", "#c62828", func(d doorledger.UnlockDay) int { return d.Anomalous }},
}

type chartBar struct {
	X, Y, W, H string
	Color      string
	Title      string
	Series     string
	Date       string
	Value      int
}

type chartText struct {
	X, Y, Text string
}

type chartModel struct {
	Bars    []chartBar
	Dates   []chartText
	Ticks   []chartText // counts on the y axis
	Grid    []string    // y of each grid line
	Max     int
	Total   int
	ViewBox string
}

func fnum(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// chartMax rounds the largest count up to a number with an even half, so the
// middle tick is a whole number: 2, 4, 6, 8, 10, 20, 40, …
func chartMax(v int) int {
	p := 1
	for {
		for _, m := range []int{2, 4, 6, 8, 10} {
			if m*p >= v {
				return m * p
			}
		}
		p *= 10
	}
}

func shortDate(s string) string {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return s
	}
	return t.Format("Jan 2")
}

func newChart(days []doorledger.UnlockDay) chartModel {
	m := chartModel{ViewBox: fmt.Sprintf("0 0 %d %d", chartWidth, chartHeight)}
	top := 0
	for _, d := range days {
		top = max(top, d.Granted, d.Denied, d.Anomalous)
		m.Total += d.Granted + d.Denied
	}
	m.Max = chartMax(top)
	base := float64(chartTop + chartPlot)
	for _, v := range []int{0, m.Max / 2, m.Max} {
		y := base - float64(v)/float64(m.Max)*chartPlot
		m.Grid = append(m.Grid, fnum(y))
		m.Ticks = append(m.Ticks, chartText{X: fnum(chartLeft - 4), Y: fnum(y + 4), Text: strconv.Itoa(v)})
	}
	if len(days) == 0 {
		return m
	}
	slot := float64(chartWidth-chartLeft-chartRight) / float64(len(days))
	barW := slot * 0.27
	for i, d := range days {
		x0 := chartLeft + float64(i)*slot + slot*0.08
		for k, s := range chartSeries {
			v := s.value(d)
			h := float64(v) / float64(m.Max) * chartPlot
			if v > 0 && h < 1.5 {
				h = 1.5 // a single event stays visible
			}
			m.Bars = append(m.Bars, chartBar{
				X: fnum(x0 + float64(k)*(barW+slot*0.02)), Y: fnum(base - h), W: fnum(barW), H: fnum(h),
				Color: s.color, Series: s.name, Date: d.Date, Value: v,
				Title: fmt.Sprintf("%s: %d %s", d.Date, v, s.name),
			})
		}
		// Date labels every seventh day, counting back from today.
		if (len(days)-1-i)%7 == 0 {
			m.Dates = append(m.Dates, chartText{X: fnum(chartLeft + (float64(i)+0.5)*slot), Y: fnum(chartLabelY), Text: shortDate(d.Date)})
		}
	}
	return m
}
