package browsertest

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/static"
)

// TestAxeIsNotServed: axe-core is test data of this package, read from
// testdata at run time; the portal's embedded assets do not hold it.
func TestAxeIsNotServed(t *testing.T) {
	if _, err := axeJS(); err != nil {
		t.Fatal(err)
	}
	err := fs.WalkDir(static.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(path), "axe") {
			t.Errorf("static.FS holds %s: axe-core is test-only", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAxeBlocking(t *testing.T) {
	for _, tt := range []struct {
		id, impact string
		want       bool
	}{
		{"color-contrast", "serious", true},
		{"aria-allowed-role", "critical", true},
		{"empty-table-header", "minor", true}, // held: no page has one any more
		{"region", "moderate", false},
		{"landmark-unique", "minor", false},
	} {
		if got := (AxeViolation{ID: tt.id, Impact: tt.impact}).Blocking(); got != tt.want {
			t.Errorf("%s (%s): Blocking %v, want %v", tt.id, tt.impact, got, tt.want)
		}
	}
}
