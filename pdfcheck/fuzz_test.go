package pdfcheck_test

import (
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/pdftest"
	"github.com/doorledger/doorledger/pdfcheck"
)

// FuzzCheck feeds arbitrary bytes to Check: it must never panic, refuse only
// with EINVALID, and whatever it accepts must be within its bounds. The seeds
// run with the normal suite; a longer run is
// go test -run '^$' -fuzz FuzzCheck -fuzztime 10m ./pdfcheck
func FuzzCheck(f *testing.F) {
	f.Add(pdftest.Pages(1))
	f.Add(pdftest.Pages(3))
	f.Add(pdftest.JavaScript())
	f.Add(pdftest.EmbeddedFile())
	f.Add(pdftest.ObjectStream(5))
	f.Add(pdftest.Truncated())
	f.Add(FPDFPages(f, 1, "A4"))
	f.Add([]byte("%PDF-1.4\n<< /Type /Page >> startxref 9 %%EOF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		facts, err := pdfcheck.Check(b)
		if err != nil {
			if doorledger.ErrorCode(err) != doorledger.EINVALID {
				t.Fatalf("code %q: %v", doorledger.ErrorCode(err), err)
			}
			return
		}
		if facts.Pages < 1 || facts.Pages > pdfcheck.MaxPages || facts.Objects > pdfcheck.MaxObjects || facts.Size != int64(len(b)) {
			t.Fatalf("accepted out of bounds: %+v", facts)
		}
	})
}
