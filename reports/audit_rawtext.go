package reports

import (
	"math"
	"strconv"
	"strings"
)

// rawText builds the content-stream operators of a table row: one text
// object in which each piece of text is moved to relative to the last (Td)
// and shown (Tj) in the font fpdf last selected, which a page break
// re-selects.
//
// fpdf formats every text operation with fmt and records each rune of it in
// a map for the font subset, which makes a long table slow.
// So a rune is written through fpdf's Text the first time (that puts it in
// the subset), and afterwards here: as a CID string of UTF-16 code units,
// which is what fpdf writes for a UTF-8 font, in a literal string with
// ( ) \ and line ends escaped.
type rawText struct {
	p    *auditPrinter
	b    []byte
	x, y int64 // where the last Td moved to, in hundredths of a point
}

// text shows s with its baseline's left end at (x, y), in points from the
// bottom left of the page.
func (t *rawText) text(x, y float64, s string) {
	p := t.p
	for _, r := range s {
		if r > 0xffff || !p.seen[r] {
			k := p.pdf.GetConversionRatio()
			p.pdf.SetTextColor(0, 0, 0)
			p.pdf.Text(x/k, pageHeight-y/k, s)
			for _, r := range s {
				if r <= 0xffff {
					p.seen[r] = true
				}
			}
			return
		}
	}
	nx, ny := int64(math.Round(x*100)), int64(math.Round(y*100))
	t.b = append(t.b, ' ')
	t.b = appendHundredths(t.b, nx-t.x)
	t.b = append(t.b, ' ')
	t.b = appendHundredths(t.b, ny-t.y)
	t.b = append(t.b, " Td ("...)
	t.x, t.y = nx, ny
	for _, r := range s {
		for _, c := range [2]byte{byte(r >> 8), byte(r)} {
			switch c {
			case '(', ')', '\\':
				t.b = append(t.b, '\\', c)
			case '\r':
				t.b = append(t.b, '\\', 'r')
			case '\n':
				t.b = append(t.b, '\\', 'n')
			default:
				t.b = append(t.b, c)
			}
		}
	}
	t.b = append(t.b, ")Tj"...)
}

// appendHundredths appends v/100 with at most two decimals.
func appendHundredths(b []byte, v int64) []byte {
	if v < 0 {
		b, v = append(b, '-'), -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	if f := v % 100; f != 0 {
		b = append(b, '.', byte('0'+f/10))
		if f%10 != 0 {
			b = append(b, byte('0'+f%10))
		}
	}
	return b
}

// appendPt appends v with two decimals and a space.
func appendPt(b []byte, v float64) []byte {
	return append(strconv.AppendFloat(b, v, 'f', 2, 64), ' ')
}

// cellText is oneLine for a table cell, keeping the line breaks a cell
// asks for, and skipping the work for plain ASCII.
func cellText(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' || c > 0x7e || c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ') {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = oneLine(l)
	}
	return strings.Join(lines, "\n")
}
