package doorledger_test

import (
	"slices"
	"testing"

	"github.com/doorledger/doorledger"
)

// TestTenantNoticeAddDevice: devices under the complete record they name,
// in the order vendors were first named; the others counted.
func TestTenantNoticeAddDevice(t *testing.T) {
	complete := func(id int64, name string) *doorledger.VendorDisclosure {
		return &doorledger.VendorDisclosure{ID: id, LegalName: name, DataCollected: "courier id, time", Purpose: "deliveries",
			Retention: "90 days", PolicyURL: "https://acme.example/privacy"}
	}
	records := []*doorledger.VendorDisclosure{complete(1, "Acme"), complete(2, "Bolt"), {ID: 3, LegalName: "Half done"}}
	var n doorledger.TenantPrivacyNotice
	n.AddDevice(10, "Bolt", "B2", "", 2, records)
	n.AddDevice(11, "Acme", "", "lobby door", 1, records)
	n.AddDevice(12, "Bolt", "B3", "garage", 2, records)
	n.AddDevice(13, "Half", "H1", "", 3, records) // incomplete record
	n.AddDevice(14, "None", "N1", "", 0, records) // no record
	n.AddDevice(15, "Gone", "G1", "", 9, records) // a record not of the building
	if n.Undisclosed != 3 || len(n.Vendors) != 2 {
		t.Fatalf("notice %+v", n)
	}
	if v := n.Vendors[0]; v.Disclosure.LegalName != "Bolt" || !slices.Equal(v.Devices, []string{"#10 Bolt B2", "#12 Bolt B3 (garage)"}) {
		t.Errorf("first vendor %+v", v)
	}
	if v := n.Vendors[1]; v.Disclosure.LegalName != "Acme" || !slices.Equal(v.Devices, []string{"#11 Acme (lobby door)"}) {
		t.Errorf("second vendor %+v", v)
	}
}
