package reports

import (
	"fmt"
	"io"
	"time"

	"github.com/go-pdf/fpdf"
	qrcode "github.com/yeqown/go-qrcode/v2"
)

// Poster paper sizes.
const (
	PaperA4     = "a4"
	PaperLetter = "letter"
)

// Poster is the building's notice poster, to be put up at the intercom.
type Poster struct {
	BuildingName string
	URL          string // the public notice's address: the QR code and the printed link
	Contact      string // how to reach the manager ("" for none)
	Paper        string // PaperA4 or PaperLetter
	CreatedAt    time.Time
}

// NoticePosterPDF prints the poster: "Who can open this door?", the
// building's name, a QR code of the notice's address and the address itself.
//
// The QR code is drawn as vector rectangles, one per run of dark modules, so
// it stays sharp at any print size. Its modules come from
// github.com/yeqown/go-qrcode/v2 (its core package only, without image
// writers): byte mode, error correction level Q (25% of the code may be
// scratched or covered), a quiet zone of four modules.
func NoticePosterPDF(w io.Writer, p Poster) error {
	size := "A4"
	switch p.Paper {
	case PaperA4:
	case PaperLetter:
		size = "Letter"
	default:
		return fmt.Errorf("poster paper %q: want %s or %s", p.Paper, PaperA4, PaperLetter)
	}
	bitmap, err := qrModules(p.URL)
	if err != nil {
		return err
	}
	pdf := fpdf.New("P", "mm", size, "")
	pdf.AddUTF8FontFromBytes(fontFamily, "", dejaVuSans)
	pdf.AddUTF8FontFromBytes(fontFamily, "B", dejaVuSansBold)
	pdf.SetCatalogSort(true)
	pdf.SetCreationDate(p.CreatedAt.UTC())
	pdf.SetModificationDate(p.CreatedAt.UTC())
	pdf.SetTitle(oneLine("Who can open this door? "+p.BuildingName), true)
	pdf.SetCreator("Doorledger", true)
	pdf.SetLang("en")
	const margin = 18.0
	pdf.SetMargins(margin, margin, margin)
	pdf.SetAutoPageBreak(false, margin)
	pdf.AddPage()
	w0, h0 := pdf.GetPageSize()
	width := w0 - 2*margin

	pdf.SetY(margin + 4)
	pdf.SetFont(fontFamily, "B", 34)
	pdf.MultiCell(width, 15, "Who can open this door?", "", "C", false)
	pdf.Ln(2)
	pdf.SetFont(fontFamily, "B", 20)
	pdf.MultiCell(width, 9, oneLine(p.BuildingName), "", "C", false)
	pdf.Ln(4)
	pdf.SetFont(fontFamily, "", 13)
	pdf.MultiCell(width, 6.2, "Delivery devices wired into this building's intercom can open its doors for couriers. "+
		"Scan the code to see every one of them, who consented to it and until when, and to report a device that is not listed. "+
		"No sign-in, no app.", "", "C", false)
	pdf.Ln(6)

	// The code: as large as the page leaves room for, at most 110 mm.
	n := len(bitmap) + 2*qrQuietZone
	side := min(width, 110.0, h0-pdf.GetY()-margin-48)
	module := side / float64(n)
	x0 := (w0 - side) / 2
	y0 := pdf.GetY()
	pdf.SetFillColor(0, 0, 0)
	for y, row := range bitmap {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			// A hair taller than a module, so that no seam shows between rows.
			pdf.Rect(x0+float64(x+qrQuietZone)*module, y0+float64(y+qrQuietZone)*module, float64(run)*module, module+0.02, "F")
			x += run
		}
	}
	pdf.SetY(y0 + side + 4)

	pdf.SetFont(fontFamily, "", 11)
	pdf.MultiCell(width, 5.2, "Or type this address:", "", "C", false)
	pdf.SetFont(fontFamily, "B", 11)
	pdf.MultiCell(width, 5.2, oneLine(p.URL), "", "C", false)
	if p.Contact != "" {
		pdf.Ln(3)
		pdf.SetFont(fontFamily, "", 11)
		pdf.MultiCell(width, 5.2, oneLine("The building's manager: "+p.Contact), "", "C", false)
	}
	pdf.SetY(h0 - margin - 6)
	pdf.SetFont(fontFamily, "", 8)
	pdf.SetTextColor(100, 100, 100)
	pdf.MultiCell(width, 4, "Printed "+p.CreatedAt.UTC().Format("2006-01-02")+" from Doorledger. "+
		"If the code no longer works, the manager has given the notice a new address: ask for a new poster.", "", "C", false)
	if err := pdf.Error(); err != nil {
		return err
	}
	return pdf.Output(w)
}

// qrQuietZone is the white margin around the code, in modules (ISO/IEC 18004 asks for 4).
const qrQuietZone = 4

// qrModules encodes text as a QR code and returns its modules, dark = true.
func qrModules(text string) ([][]bool, error) {
	qr, err := qrcode.NewWith(text, qrcode.WithEncodingMode(qrcode.EncModeByte), qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionQuart))
	if err != nil {
		return nil, fmt.Errorf("QR code of %q: %w", text, err)
	}
	var m matrixOf
	if err := qr.Save(&m); err != nil {
		return nil, err
	}
	return m.bitmap, nil
}

// matrixOf is a qrcode.Writer that keeps the modules.
type matrixOf struct{ bitmap [][]bool }

func (m *matrixOf) Write(mat qrcode.Matrix) error {
	m.bitmap = mat.Bitmap()
	return nil
}

func (m *matrixOf) Close() error { return nil }
