// Package testtool is what several packages' tests share: it finds the
// external programs some tests drive (pdftotext, qpdf, chromium…), so a
// missing one is a visible skip on a laptop and a failure in CI, and reads a
// database's files as a copy of them would (DatabaseFiles).
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns a missing tool from a
// skip into a failure. CI sets it to 1.
const RequireEnv = "DOORLEDGER_REQUIRE_TOOLS"

// Require returns the path of the program name found on PATH. When it is
// missing, the test is skipped with the reason, or fails if RequireEnv is "1".
func Require(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%s is required (%s=1) but not found: %v", name, RequireEnv, err)
	}
	hint := ""
	if pkg, ok := debianPackages[name]; ok {
		hint = " (Debian package " + pkg + ")"
	}
	tb.Skipf("skipping: %s not found on PATH%s; set %s=1 to make this a failure", name, hint, RequireEnv)
	return ""
}

// debianPackages names the package that provides each tool the tests use.
var debianPackages = map[string]string{
	"pdftotext": "poppler-utils",
	"pdftoppm":  "poppler-utils",
	"pdfinfo":   "poppler-utils",
	"qpdf":      "qpdf",
	"chromium":  "chromium",
	"zbarimg":   "zbar-tools",
	"sqlite3":   "sqlite3",
	"promtool":  "prometheus",
}
