package dbtest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var vendorTests = []test{
	{"VendorIntegrationCreate", testVendorIntegrationCreate},
}

// CreateVendor creates a vendor integration (as the admin) for buildings.
func CreateVendor(t testing.TB, w *UnlockWorld, name string, buildings ...int64) (*doorledger.VendorIntegration, string) {
	t.Helper()
	v, key, err := w.Vendors.CreateVendorIntegration(As(w.Admin), doorledger.VendorIntegrationInput{
		Name: name, WebhookURL: "https://" + strings.ToLower(strings.ReplaceAll(name, " ", "")) + ".example/hook", BuildingIDs: buildings})
	if err != nil {
		t.Fatal(err)
	}
	return v, key
}

func testVendorIntegrationCreate(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	v, key := CreateVendor(t, w, "Acme Cloud", w.B, w.A)
	if !strings.HasPrefix(key, doorledger.VendorKeyPrefix) || len(key) != len(doorledger.VendorKeyPrefix)+43 {
		t.Errorf("key %q: want the prefix and 32 random bytes in base64url", key)
	}
	sum := sha256.Sum256([]byte(key))
	if v.Name != "Acme Cloud" || v.Key.Fingerprint != fmt.Sprintf("%x", sum[:4]) || v.PreviousKey.Fingerprint != "" || v.Retired {
		t.Errorf("created %+v", v)
	}
	// Buildings by name: Alder Court (A), Birch House (B).
	if !slices.Equal(v.BuildingIDs, []int64{w.A, w.B}) || !slices.Equal(v.Buildings, []string{"Alder Court", "Birch House"}) {
		t.Errorf("buildings %v %v", v.BuildingIDs, v.Buildings)
	}
	list, err := w.Vendors.FindVendorIntegrations(As(w.Admin))
	if err != nil || len(list) != 1 || list[0].ID != v.ID {
		t.Fatalf("list %v %v", list, err)
	}
	// One audit entry per covered building, so each building's journal shows it.
	if n := len(slices.DeleteFunc(w.Journal(t, 0, "vendor.create"), func(e *doorledger.AuditEntry) bool { return e.ObjectID != v.ID })); n != 2 {
		t.Errorf("audit entries %d, want 2", n)
	}

	for _, tt := range []struct {
		name  string
		in    doorledger.VendorIntegrationInput
		field string
		code  string
	}{
		{"no name", doorledger.VendorIntegrationInput{WebhookURL: "https://x.example", BuildingIDs: []int64{w.A}}, "name", doorledger.EINVALID},
		{"plain http", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "http://x.example/hook", BuildingIDs: []int64{w.A}}, "webhook_url", doorledger.EINVALID},
		{"credentials in URL", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "https://u:p@x.example/hook", BuildingIDs: []int64{w.A}}, "webhook_url", doorledger.EINVALID},
		{"not a URL", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "x.example", BuildingIDs: []int64{w.A}}, "webhook_url", doorledger.EINVALID},
		{"no building", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "https://x.example"}, "buildings", doorledger.EINVALID},
		{"unknown building", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "https://x.example", BuildingIDs: []int64{999}}, "buildings", doorledger.EINVALID},
		{"name in use", doorledger.VendorIntegrationInput{Name: "acme cloud", WebhookURL: "https://x.example", BuildingIDs: []int64{w.A}}, "name", doorledger.ECONFLICT},
	} {
		_, _, err := w.Vendors.CreateVendorIntegration(As(w.Admin), tt.in)
		if doorledger.ErrorCode(err) != tt.code || doorledger.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: err %v, want %s on %s", tt.name, err, tt.code, tt.field)
		}
	}
	// Loopback http is allowed (a local simulator, tests).
	if _, _, err := w.Vendors.CreateVendorIntegration(As(w.Admin), doorledger.VendorIntegrationInput{Name: "Local", WebhookURL: "http://127.0.0.1:9/hook", BuildingIDs: []int64{w.A}}); err != nil {
		t.Errorf("loopback http: %v", err)
	}

	// Admins only.
	for _, ctx := range []context.Context{As(w.MgrA), As(w.BoardA), context.Background()} {
		if _, _, err := w.Vendors.CreateVendorIntegration(ctx, doorledger.VendorIntegrationInput{Name: "Y", WebhookURL: "https://y.example", BuildingIDs: []int64{w.A}}); err == nil {
			t.Error("a non-admin created an integration")
		}
		if _, err := w.Vendors.FindVendorIntegrations(ctx); err == nil {
			t.Error("a non-admin listed integrations")
		}
		if _, err := w.Vendors.RotateVendorKey(ctx, v.ID); err == nil {
			t.Error("a non-admin rotated a key")
		}
	}
}
