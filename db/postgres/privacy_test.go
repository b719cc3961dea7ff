package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
)

// TestPrivacyHoldAtSigning: under the Tenant Data Privacy Act profile a
// consent signed for a device that names no vendor disclosure record is
// signed, but its device stays disabled and the managers are told why;
// once a complete record is named, the status and the tenant notice show
// it. (No dbtest group runs the privacy service whole before the device
// service is ported: this covers the port's part that the consents use.)
func TestPrivacyHoldAtSigning(t *testing.T) {
	s, _ := openServices(t)
	w := dbtest.NewResidentWorld(t, dbtest.NewConsentWorld(t, s))
	mgr := dbtest.As(w.Manager)
	if err := w.Privacy.SetPrivacyProfile(mgr, w.A.ID, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	c := w.Signed(t, "SN-PRIV-1")
	got, err := w.Consents.FindConsentByID(mgr, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if state, _ := w.Device(t, c.DeviceID); got.Status != doorledger.ConsentSigned || state != "disabled" {
		t.Fatalf("signed under the profile without a disclosure: consent %s, device %s (want signed, disabled)", got.Status, state)
	}
	if m := w.Mail(t, "manager@example.com", "stays disabled"); len(m) != 1 || !strings.Contains(m[0].Body, "vendor disclosure record") {
		t.Fatalf("managers' alert of the hold: %+v", m)
	}
	st, err := w.Privacy.PrivacyStatus(mgr, w.A.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Profile != doorledger.PrivacyProfileTDPA || len(st.Devices) != 1 || st.Devices[0].Enabled || len(st.Checks) != 2 || !st.Checks[0].Holds {
		t.Fatalf("status: %+v", st)
	}
	d, err := w.Privacy.SaveVendorDisclosure(mgr, w.A.ID, 0, doorledger.VendorDisclosureInput{LegalName: "Acme Access Inc.",
		DataCollected: "courier id, time", Purpose: "deliveries", Retention: "90 days", PolicyURL: "https://acme.example/privacy"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Privacy.SetDeviceDisclosure(mgr, w.A.ID, c.DeviceID, d.ID); err != nil {
		t.Fatal(err)
	}
	n, err := w.Privacy.TenantNotice(context.Background(), w.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Vendors) != 1 || n.Vendors[0].Disclosure.LegalName != "Acme Access Inc." || n.Undisclosed != 0 || len(n.Vendors[0].Devices) != 1 {
		t.Fatalf("tenant notice: %+v", n)
	}
}
