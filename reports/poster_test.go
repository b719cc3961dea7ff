package reports_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/reports"
)

// The poster's QR code decodes, with Debian's zbarimg from the page as
// pdftoppm renders it, to exactly the notice's address, on both papers, and
// the PDF passes qpdf --check.
func TestNoticePosterQRCode(t *testing.T) {
	const url = "https://doors.example.org/notice/0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ paper, mediaBox string }{
		{reports.PaperA4, "595.28 841.89"},
		{reports.PaperLetter, "612.00 792.00"},
	} {
		t.Run(tc.paper, func(t *testing.T) {
			var buf bytes.Buffer
			err := reports.NoticePosterPDF(&buf, reports.Poster{BuildingName: "Łazienki Court", URL: url, Contact: "Mia, office@lazienki.example, 555-0100",
				Paper: tc.paper, CreatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			MustQPDFCheck(t, testtool.Require(t, "qpdf"), buf.Bytes())
			if got, want := testtool.PDFQRCodes(t, buf.Bytes()), []string{"QR-Code:" + url}; !slices.Equal(got, want) {
				t.Errorf("QR codes %q, want %q", got, want)
			}
			if !bytes.Contains(buf.Bytes(), []byte("/MediaBox [0 0 "+tc.mediaBox+"]")) {
				t.Errorf("not %s paper: want MediaBox %s", tc.paper, tc.mediaBox)
			}
			text := MustPDFText(t, buf.Bytes())
			for _, want := range []string{"Who can open this door?", "Łazienki Court", url, "office@lazienki.example"} {
				if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
					t.Errorf("poster text lacks %q:\n%s", want, text)
				}
			}
		})
	}
	if err := reports.NoticePosterPDF(&bytes.Buffer{}, reports.Poster{URL: url, Paper: "a3"}); err == nil {
		t.Error("a3 poster: no error")
	}
}
