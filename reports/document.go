// Package reports prints Doorledger's records as PDF documents with
// go-pdf/fpdf.
//
// Every document uses the embedded DejaVu Sans (see fonts/LICENSE), because
// fpdf's core fonts are cp1252 and cannot print names such as "Łukasz Wróbel",
// Greek or Cyrillic. Every page carries the document's id and "Page x of y".
// Output depends only on the inputs: the caller passes the generation time,
// which becomes the PDF's creation and modification date, so the same record
// printed at the same time gives the same bytes.
//
// User text is only ever written with Cell/MultiCell, never with fpdf's HTML
// writer, so markup in a name prints as the literal characters typed. Images
// are re-validated with imagecheck before fpdf's own decoder sees them.
package reports

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-pdf/fpdf"
)

var (
	//go:embed fonts/DejaVuSans.ttf
	dejaVuSans []byte
	//go:embed fonts/DejaVuSans-Bold.ttf
	dejaVuSansBold []byte
)

// Page geometry, in millimetres (A4 portrait).
const (
	fontFamily   = "DejaVu"
	marginLeft   = 18.0
	marginRight  = 18.0
	marginTop    = 18.0
	marginBottom = 22.0 // room for the footer
	pageWidth    = 210.0
	contentWidth = pageWidth - marginLeft - marginRight
)

// document describes a PDF to render.
type document struct {
	ID        string    // printed in every footer, and the PDF's subject
	Title     string    // the PDF's title
	CreatedAt time.Time // the PDF's creation and modification date
}

// render writes the document that draw produces onto its first page (and any
// pages it adds), with DejaVu Sans registered as fontFamily ("" and "B") and a
// footer on every page with the document id and "Page x of y".
//
// It draws twice: once to count the pages, then for real with the count in
// every footer. fpdf's AliasNbPages would instead search and replace an alias
// such as "{nb}" in the finished page streams, which also rewrites that alias
// when a user typed it, or when UTF-16 text happens to contain its bytes.
func render(w io.Writer, d document, draw func(pdf *fpdf.Fpdf)) error {
	pdf := newDocument(d, 0)
	draw(pdf)
	if err := pdf.Error(); err != nil {
		return err
	}
	pages := pdf.PageCount()

	pdf = newDocument(d, pages)
	draw(pdf)
	if err := pdf.Error(); err != nil {
		return err
	}
	if got := pdf.PageCount(); got != pages {
		return fmt.Errorf("page count changed between passes: %d, then %d", pages, got)
	}
	return pdf.Output(w)
}

// newDocument returns an A4 document with the fonts, the footer (saying "of
// pages") and the fixed dates set, and its first page added. Check
// pdf.Error() before Output: fpdf records the first error and ignores later
// calls.
func newDocument(d document, pages int) *fpdf.Fpdf {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes(fontFamily, "", dejaVuSans)
	pdf.AddUTF8FontFromBytes(fontFamily, "B", dejaVuSansBold)

	pdf.SetCatalogSort(true) // fixed resource order, for byte-identical output
	pdf.SetCreationDate(d.CreatedAt.UTC())
	pdf.SetModificationDate(d.CreatedAt.UTC())
	pdf.SetTitle(oneLine(d.Title), true)
	pdf.SetSubject(oneLine(d.ID), true)
	pdf.SetCreator("Doorledger", true)
	pdf.SetLang("en")

	pdf.SetMargins(marginLeft, marginTop, marginRight)
	pdf.SetAutoPageBreak(true, marginBottom)
	footerID := oneLine(d.ID)
	pdf.SetFooterFunc(func() {
		pdf.SetY(-15)
		pdf.SetDrawColor(190, 190, 190)
		pdf.SetLineWidth(0.2)
		pdf.Line(marginLeft, pdf.GetY(), pageWidth-marginRight, pdf.GetY())
		pdf.Ln(1.5)
		pdf.SetFont(fontFamily, "", 8)
		pdf.SetTextColor(100, 100, 100)
		pdf.CellFormat(contentWidth*0.75, 4, footerID, "", 0, "L", false, 0, "")
		pdf.CellFormat(contentWidth*0.25, 4, fmt.Sprintf("Page %d of %d", pdf.PageNo(), pages), "", 0, "R", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()
	return pdf
}

// oneLine makes untrusted text safe for a single-line cell: invalid UTF-8
// becomes U+FFFD, line breaks, tabs and other control characters become
// spaces, bidi controls (which could reorder text in viewers that extract it)
// are dropped, characters beyond U+FFFF (emoji) become U+FFFD, and runs of
// spaces collapse.
func oneLine(s string) string {
	s = clean(s, false)
	return strings.Join(strings.Fields(s), " ")
}

// multiLine is oneLine for text that keeps its line breaks (the terms): CRLF
// and CR become LF, tabs become four spaces, and trailing space is trimmed.
func multiLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\t", "    ")
	lines := strings.Split(clean(s, true), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

func clean(s string, keepNewlines bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '\n' && keepNewlines:
			b.WriteRune(r)
		case isBidiControl(r):
			// dropped
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case r > 0xffff:
			// fpdf's width table stops at U+FFFF: Cell and SplitText
			// panic on an emoji and MultiCell fails the whole document.
			// DejaVu Sans has no glyphs up there anyway.
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r) // includes U+FFFD for invalid bytes
		}
	}
	return b.String()
}

func isBidiControl(r rune) bool {
	return r == '\u200e' || r == '\u200f' || r == '\u061c' ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}
