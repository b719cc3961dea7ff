package reports

import (
	"fmt"
	"math"
)

// chart draws the unlocks of each day (or week) as stacked bars, granted
// under denied, with the anomalous ones in a band of their own below.
func (p *auditPrinter) chart() {
	pdf, a, t := p.pdf, p.a, p.t
	const (
		barsH  = 46.0 // the bars' area
		anomH  = 7.0  // the anomalies' band
		axisW  = 14.0 // room for the scale, left of the bars
		labelH = 5.0  // dates under the bars
	)
	if pdf.GetY()+12+barsH+anomH+labelH+12 > pageHeight-marginBottom {
		pdf.AddPage()
	}
	pdf.SetFont(fontFamily, "B", 10)
	pdf.CellFormat(contentWidth, 6, "Unlocks per "+bucketName(a.bucketDays)+" (building time)", "", 1, "L", false, 0, "")

	// Legend.
	pdf.SetFont(fontFamily, "", 8)
	x := marginLeft
	for _, l := range []struct {
		c    rgb
		text string
	}{{colorGranted, "granted"}, {colorDenied, "denied"}, {colorAnomaly, "anomalous (in the band below the dates)"}} {
		pdf.SetFillColor(l.c.r, l.c.g, l.c.b)
		pdf.Rect(x, pdf.GetY()+1, 3, 3, "F")
		w := pdf.GetStringWidth(l.text) + 4
		pdf.SetXY(x+4, pdf.GetY())
		pdf.CellFormat(w, 5, l.text, "", 0, "L", false, 0, "")
		x += 4 + w + 4
	}
	pdf.Ln(7)

	top := pdf.GetY()
	x0, plotW := marginLeft+axisW, contentWidth-axisW
	base := top + barsH
	most, mostAnom := 0, 0
	for _, b := range t.buckets {
		most = max(most, b.granted+b.denied)
		mostAnom = max(mostAnom, b.anomalous)
	}
	scale := niceCeil(most)

	// Scale and grid lines.
	pdf.SetDrawColor(210, 210, 210)
	pdf.SetLineWidth(0.15)
	pdf.SetFont(fontFamily, "", 7)
	for _, v := range []int{0, scale / 2, scale} {
		y := base - float64(v)/float64(scale)*barsH
		pdf.Line(x0, y, x0+plotW, y)
		pdf.SetXY(marginLeft, y-2)
		pdf.CellFormat(axisW-1.5, 4, number(v), "", 0, "R", false, 0, "")
	}

	// Bars.
	n := len(t.buckets)
	bw := plotW / float64(n)
	gap := 0.0
	if bw > 1.2 {
		gap = bw * 0.2
	}
	for i, b := range t.buckets {
		bx := x0 + float64(i)*bw + gap/2
		hg := float64(b.granted) / float64(scale) * barsH
		hd := float64(b.denied) / float64(scale) * barsH
		if hg > 0 {
			pdf.SetFillColor(colorGranted.r, colorGranted.g, colorGranted.b)
			pdf.Rect(bx, base-hg, bw-gap, hg, "F")
		}
		if hd > 0 {
			pdf.SetFillColor(colorDenied.r, colorDenied.g, colorDenied.b)
			pdf.Rect(bx, base-hg-hd, bw-gap, hd, "F")
		}
	}
	pdf.SetDrawColor(90, 90, 90)
	pdf.SetLineWidth(0.25)
	pdf.Line(x0, base, x0+plotW, base)

	// Dates under the bars: at most seven, evenly spaced.
	pdf.SetFont(fontFamily, "", 6.5)
	ticks := min(n, 7)
	for k := 0; k < ticks; k++ {
		i := 0
		if ticks > 1 {
			i = k * (n - 1) / (ticks - 1)
		}
		cx := x0 + (float64(i)+0.5)*bw
		label := a.start.AddDate(0, 0, i*a.bucketDays).Format("2006-01-02")
		w := 20.0
		lx := math.Min(math.Max(cx-w/2, x0-3), x0+plotW-w+3)
		pdf.SetXY(lx, base+0.8)
		pdf.CellFormat(w, 3.5, label, "", 0, "C", false, 0, "")
	}

	// The anomalies' band.
	bandTop := base + labelH
	pdf.SetFont(fontFamily, "", 7)
	pdf.SetXY(marginLeft, bandTop+anomH/2-2)
	pdf.CellFormat(axisW-1.5, 4, number(mostAnom), "", 0, "R", false, 0, "")
	pdf.SetDrawColor(210, 210, 210)
	pdf.SetLineWidth(0.15)
	pdf.Line(x0, bandTop+anomH, x0+plotW, bandTop+anomH)
	if mostAnom > 0 {
		pdf.SetFillColor(colorAnomaly.r, colorAnomaly.g, colorAnomaly.b)
		for i, b := range t.buckets {
			if b.anomalous > 0 {
				h := math.Max(float64(b.anomalous)/float64(mostAnom)*anomH, 0.4)
				pdf.Rect(x0+float64(i)*bw+gap/2, bandTop+anomH-h, bw-gap, h, "F")
			}
		}
	}
	pdf.SetY(bandTop + anomH + 3)
	pdf.SetFont(fontFamily, "", 8)
	pdf.SetTextColor(colorMuted.r, colorMuted.g, colorMuted.b)
	pdf.CellFormat(contentWidth, 4, fmt.Sprintf("%s bars from %s to %s; the tallest counts %s.", number(n), a.r.From, a.r.To, plural(most, "event", "events")), "", 1, "L", false, 0, "")
	pdf.SetTextColor(0, 0, 0)
}

var (
	colorGranted = rgb{52, 101, 164}
	colorDenied  = rgb{237, 160, 60}
	colorAnomaly = rgb{200, 40, 40}
)

// niceCeil returns the top of a scale for values up to n: twice a step of
// 1, 2 or 5 times a power of ten, so the middle grid line is a round number.
func niceCeil(n int) int {
	half := max((n+1)/2, 1)
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= half {
				return 2 * m * p
			}
		}
	}
}
