package pdfcheck_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/pdftest"
	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/pdfcheck"
	"github.com/go-pdf/fpdf"
)

// FPDFPages writes an n-page PDF with fpdf, as a real writer would.
func FPDFPages(tb testing.TB, n int, size string) []byte {
	tb.Helper()
	pdf := fpdf.New("P", "mm", size, "")
	pdf.SetFont("Helvetica", "", 12)
	for i := 0; i < n; i++ {
		pdf.AddPage()
		pdf.Cell(40, 10, "Permission form")
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckAccepts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pdf      []byte
		pages    int
		pageSize string
	}{
		{"hand-written, 3 pages", pdftest.Pages(3), 3, "A4 portrait (210 × 297 mm)"},
		{"fpdf A4", FPDFPages(t, 2, "A4"), 2, "A4 portrait (210 × 297 mm)"},
		{"fpdf Letter", FPDFPages(t, 1, "Letter"), 1, "Letter portrait (216 × 279 mm)"},
		{"object stream", pdftest.ObjectStream(10), 1, "A4 portrait (210 × 297 mm)"},
		{"30 pages", pdftest.Pages(pdfcheck.MaxPages), pdfcheck.MaxPages, "A4 portrait (210 × 297 mm)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := pdfcheck.Check(tc.pdf)
			if err != nil {
				t.Fatal(err)
			}
			if f.Pages != tc.pages {
				t.Errorf("pages = %d, want %d", f.Pages, tc.pages)
			}
			if f.PageSize != tc.pageSize {
				t.Errorf("page size = %q, want %q", f.PageSize, tc.pageSize)
			}
			if len(f.Warnings()) != 0 {
				t.Errorf("warnings %v on a plain PDF", f.Warnings())
			}
		})
	}
	f, _ := pdfcheck.Check(pdftest.Pages(1))
	if f.Producer != "pdftest scanner" || f.Created != "D:20261201093000Z" || f.Version != "1.7" {
		t.Errorf("facts = %+v", f)
	}
}

// Hostile PDFs: active content is accepted as evidence and
// reported; too many objects or pages, a file that is not a PDF, a truncated
// one and a compression bomb are refused with a message for the uploader.
func TestCheckHostile(t *testing.T) {
	js, err := pdfcheck.Check(pdftest.JavaScript())
	if err != nil || !js.JavaScript || js.Pages != 1 {
		t.Errorf("JavaScript PDF: %+v, %v; want accepted with JavaScript found", js, err)
	}
	emb, err := pdfcheck.Check(pdftest.EmbeddedFile())
	if err != nil || !emb.EmbeddedFiles {
		t.Errorf("embedded-file PDF (escaped name): %+v, %v; want accepted with embedded files found", emb, err)
	}
	for _, tc := range []struct {
		name string
		pdf  []byte
		want string
	}{
		{"10,000 objects", pdftest.ManyObjects(10000), "objects"},
		{"10,000 objects in an object stream", pdftest.ObjectStream(10000), "objects"},
		{"50 pages", pdftest.Pages(50), "50 pages"},
		{"not a PDF", []byte("GIF89a this is an image named form.pdf"), "not a PDF"},
		{"HTML named .pdf", []byte("<html><script>alert(1)</script></html>"), "not a PDF"},
		{"truncated", pdftest.Truncated(), "incomplete"},
		{"startxref outside", bytes.Replace(pdftest.Pages(1), []byte("startxref\n"), []byte("startxref\n9"), 1), "outside"},
		{"compression bomb", pdftest.Bomb(pdfcheck.MaxInflated + 1<<20), "expand"},
		{"empty", nil, "empty"},
		{"too large", append(pdftest.Pages(1), make([]byte, pdfcheck.MaxSize)...), "larger than 20 MB"},
		{"no pages", pdftest.Build([]string{"<< /Type /Catalog >>"}, ""), "no pages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pdfcheck.Check(tc.pdf)
			if doorledger.ErrorCode(err) != doorledger.EINVALID {
				t.Fatalf("err = %v, want EINVALID", err)
			}
			if !strings.Contains(doorledger.ErrorMessage(err), tc.want) {
				t.Errorf("message %q does not say %q", doorledger.ErrorMessage(err), tc.want)
			}
		})
	}
}

// qpdf rewrites a PDF with object streams and a cross-reference stream, as
// modern writers do; the count must come through unchanged.
func TestCheckQPDFObjectStreams(t *testing.T) {
	qpdf := testtool.Require(t, "qpdf")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	if err := os.WriteFile(in, FPDFPages(t, 4, "A4"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(qpdf, "--object-streams=generate", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("/ObjStm")) {
		t.Fatal("qpdf wrote no object stream")
	}
	f, err := pdfcheck.Check(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Pages != 4 {
		t.Errorf("pages = %d, want 4", f.Pages)
	}
}
