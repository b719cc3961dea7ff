package reports

import (
	"bytes"
	"cmp"
	"strings"

	"github.com/doorledger/doorledger"
)

// A table prints rows of wrapped cells, repeating its header on each page.
// Rows are written with rawText: see there.
type table struct {
	p     *auditPrinter
	cols  []column
	cells []string   // scratch for the caller's cells
	split [][]string // the lines of each cell of the row being laid out
	rows  int
	// maxLines bounds a cell's lines (0: maxCellLines); a row must fit a page.
	maxLines int
}

type column struct {
	title string
	width float64
	right bool // numbers
}

// Table metrics, in millimetres.
const (
	tableFont     = 7.0  // points
	tableLine     = 2.9  // height of a line of text
	tablePad      = 0.4  // above and below a row's lines
	tableBaseline = 2.25 // from a line's top to its baseline
	maxCellLines  = 12   // longer cells end in "…" (a row always fits a page)
)

// start prints the header, on a new page unless it and a row fit here.
func (tb *table) start() {
	if tb.p.pdf.GetY()+2*(2*tablePad+2*tableLine) > pageHeight-marginBottom {
		tb.p.pdf.AddPage()
	}
	tb.header()
}

func (tb *table) header() {
	pdf := tb.p.pdf
	pdf.SetFont(fontFamily, "B", tableFont)
	lines := 1
	for _, c := range tb.cols {
		lines = max(lines, len(pdf.SplitText(c.title, c.width)))
	}
	y, h := pdf.GetY(), float64(lines)*tableLine+2*tablePad
	pdf.SetFillColor(232, 232, 232)
	pdf.Rect(marginLeft, y, contentWidth, h, "F")
	x := marginLeft
	for _, c := range tb.cols {
		for i, l := range pdf.SplitText(c.title, c.width) {
			lx := x + pdf.GetCellMargin()
			if c.right {
				lx = x + c.width - pdf.GetCellMargin() - pdf.GetStringWidth(l)
			}
			pdf.Text(lx, y+tablePad+float64(i)*tableLine+tableBaseline, l)
		}
		x += c.width
	}
	pdf.SetFillColor(255, 255, 255)
	pdf.SetY(y + h)
	pdf.SetFont(fontFamily, "", tableFont)
}

// row lays out, places and draws one row.
func (tb *table) row(cells ...string) { tb.rowTone(doorledger.ToneNone, cells...) }

// rowTone is row on a light red band when tone is an alarm (a refused or
// unconfirmed command, a device that refused), as the portal shows it red.
func (tb *table) rowTone(tone doorledger.Tone, cells ...string) {
	for i := range cells {
		cells[i] = cellText(cells[i])
	}
	n := tb.layout(cells)
	y := tb.place(n)
	band := bandNone
	switch {
	case tone == doorledger.ToneAlarm:
		band = bandAlarm
	case tb.rows%2 == 1:
		band = bandShade
	}
	tb.draw(y, n, band)
	tb.rows++
}

// Row bands: none, the light grey of every other row, and the alarm's red.
const (
	bandNone = iota
	bandShade
	bandAlarm
)

// layout splits cells into lines to fit their columns, in the table's font
// (which must be selected: header selects it), and returns the row's number
// of lines. Cells must be clean (cellText).
func (tb *table) layout(cells []string) int {
	pdf := tb.p.pdf
	if len(tb.split) < len(tb.cols) {
		tb.split = make([][]string, len(tb.cols))
	}
	lines := 1
	for i, c := range tb.cols {
		s := ""
		if i < len(cells) {
			s = cells[i]
		}
		tb.split[i] = tb.split[i][:0]
		switch {
		case s == "":
		case strings.IndexByte(s, '\n') < 0 && pdf.GetStringWidth(s) <= c.width-2*pdf.GetCellMargin():
			tb.split[i] = append(tb.split[i], s)
		default:
			for _, part := range strings.Split(s, "\n") {
				tb.split[i] = append(tb.split[i], pdf.SplitText(part, c.width)...)
			}
			if m := cmp.Or(tb.maxLines, maxCellLines); len(tb.split[i]) > m {
				tb.split[i] = tb.split[i][:m]
				tb.split[i][m-1] += "…"
			}
		}
		lines = max(lines, len(tb.split[i]))
	}
	return lines
}

// place makes room for a row of n lines, on a new page (with the header)
// if it does not fit here, and returns its top.
func (tb *table) place(n int) float64 {
	pdf := tb.p.pdf
	h := float64(n)*tableLine + 2*tablePad
	if pdf.GetY()+h > pageHeight-marginBottom {
		pdf.AddPage()
		tb.header()
	}
	y := pdf.GetY()
	pdf.SetY(y + h)
	return y
}

// draw writes the laid-out row of n lines at y, on band.
func (tb *table) draw(y float64, n int, band int) {
	p := tb.p
	k := p.pdf.GetConversionRatio()
	m := p.pdf.GetCellMargin()
	if band != bandNone { // first: text may be written right away (see rawText)
		fill := "q 0.965 g "
		if band == bandAlarm {
			fill = "q 0.984 0.878 0.878 rg " // colorAlert
		}
		b := append(p.buf[:0], fill...)
		b = appendPt(b, marginLeft*k)
		b = appendPt(b, (pageHeight-y)*k)
		b = appendPt(b, contentWidth*k)
		b = appendPt(b, -(float64(n)*tableLine+2*tablePad)*k)
		b = append(b, "re f Q"...)
		p.pdf.RawWriteBuf(bytes.NewReader(b))
		p.buf = b
	}
	t := rawText{p: p, b: append(p.buf[:0], "q 0 g BT"...)}
	x := marginLeft
	for i, c := range tb.cols {
		for j, l := range tb.split[i] {
			lx := x + m
			if c.right {
				lx = x + c.width - m - p.pdf.GetStringWidth(l)
			}
			t.text(lx*k, (pageHeight-y-tablePad-float64(j)*tableLine-tableBaseline)*k, l)
		}
		x += c.width
	}
	p.buf = append(t.b, " ET Q"...)
	p.pdf.RawWriteBuf(bytes.NewReader(p.buf))
}
