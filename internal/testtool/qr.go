package testtool

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// PDFQRCodes renders every page of pdf at 150 dpi with poppler's pdftoppm and
// returns what Debian's zbarimg decodes from them, one "QR-Code:<text>" line
// per code found, sorted. It needs both tools (see Require). Only zbarimg's
// standard output is read: it prints a harmless D-Bus error on stderr here.
func PDFQRCodes(tb testing.TB, pdf []byte) []string {
	tb.Helper()
	pdftoppm, zbarimg := Require(tb, "pdftoppm"), Require(tb, "zbarimg")
	dir := tb.TempDir()
	in := filepath.Join(dir, "in.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(pdftoppm, "-png", "-r", "150", in, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		tb.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pages, err := filepath.Glob(filepath.Join(dir, "page*.png"))
	if err != nil || len(pages) == 0 {
		tb.Fatalf("pdftoppm rendered no page (%v)", err)
	}
	var codes []string
	for _, page := range pages {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(zbarimg, "-q", page)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// zbarimg exits 4 when it finds no code: that is an empty answer, not a failure.
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
				tb.Fatalf("zbarimg %s: %v\n%s", filepath.Base(page), err, stderr.String())
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if line != "" {
				codes = append(codes, line)
			}
		}
	}
	sort.Strings(codes)
	return codes
}
