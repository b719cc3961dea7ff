package views

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestProgressCounts(t *testing.T) {
	dev := func(desired, reported doorledger.DeviceState, desiredV, reportedV int64) *doorledger.Device {
		return &doorledger.Device{DesiredState: desired, ReportedState: reported, DesiredVersion: desiredV, ReportedVersion: reportedV}
	}
	off, on := doorledger.StateDisabled, doorledger.StateEnabled
	for _, tt := range []struct {
		name               string
		devices            []*doorledger.Device
		confirmed, refused int
	}{
		{"none", nil, 0, 0},
		{"all pending", []*doorledger.Device{dev(off, on, 2, 1), dev(off, "", 1, 0)}, 0, 0},
		{"mixed", []*doorledger.Device{
			dev(off, off, 2, 2), // confirmed disabled
			dev(off, on, 3, 3),  // refused
			dev(off, on, 4, 3),  // pending
			dev(on, on, 5, 5),   // confirmed, but enabled: not counted
			dev(off, off, 6, 6), // confirmed disabled
		}, 2, 1},
	} {
		v := ProgressView{Devices: tt.devices, Now: time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), Timeout: time.Minute}
		if got := v.Confirmed(); got != tt.confirmed {
			t.Errorf("%s: Confirmed = %d, want %d", tt.name, got, tt.confirmed)
		}
		if got := v.Refused(); got != tt.refused {
			t.Errorf("%s: Refused = %d, want %d", tt.name, got, tt.refused)
		}
	}
}

func TestVendorChoices(t *testing.T) {
	a := &doorledger.VendorIntegration{ID: 1, BuildingIDs: []int64{7, 8}, DeviceIDs: []int64{3, 10, 12}}
	b := &doorledger.VendorIntegration{ID: 2, BuildingIDs: []int64{7}, DeviceIDs: []int64{4}, Retired: true}
	c := &doorledger.VendorIntegration{ID: 3, BuildingIDs: []int64{9}}
	v := VendorsView{Integrations: []*doorledger.VendorIntegration{a, b, c}}
	for _, tt := range []struct {
		device int64
		want   *doorledger.VendorIntegration
	}{{3, a}, {12, a}, {4, b}, {5, nil}} {
		if got := v.vendorOf(tt.device); got != tt.want {
			t.Errorf("vendorOf(%d) = %v, want %v", tt.device, got, tt.want)
		}
	}
	for _, tt := range []struct {
		building int64
		want     []*doorledger.VendorIntegration
	}{{7, []*doorledger.VendorIntegration{a}}, {9, []*doorledger.VendorIntegration{c}}, {1, nil}} {
		got := v.choicesFor(tt.building)
		if len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
			t.Errorf("choicesFor(%d) = %v, want %v", tt.building, got, tt.want)
		}
	}
	f := Form{Values: map[string]string{"building": "7,18"}}
	for _, tt := range []struct {
		name, value string
		want        bool
	}{{"building", "7", true}, {"building", "18", true}, {"building", "1", false}, {"building", "", false}, {"device", "7", false}} {
		if got := vendorFormChecked(f, tt.name, tt.value); got != tt.want {
			t.Errorf("vendorFormChecked(%q, %q) = %v, want %v", tt.name, tt.value, got, tt.want)
		}
	}
}

func TestDisclosureLabel(t *testing.T) {
	complete := &doorledger.VendorDisclosure{ID: 4, LegalName: "Acme LLC", DataCollected: "times", Purpose: "deliveries", Retention: "1 year", PolicyURL: "https://acme.example/privacy"}
	partial := &doorledger.VendorDisclosure{ID: 5, LegalName: "Parcel Co"}
	v := PrivacyView{Status: &doorledger.PrivacyStatus{Disclosures: []*doorledger.VendorDisclosure{complete, partial}}}
	for _, tt := range []struct {
		id   int64
		want string
	}{{4, "#4 Acme LLC"}, {5, "#5 Parcel Co (incomplete)"}, {0, "none"}, {6, "none"}} {
		if got := v.disclosureLabel(tt.id); got != tt.want {
			t.Errorf("disclosureLabel(%d) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestBuildingFormAction(t *testing.T) {
	if got, want := buildingFormAction(0), "/buildings"; got != want {
		t.Errorf("new building form posts to %q, want %q", got, want)
	}
	if got, want := buildingFormAction(12), "/buildings/12"; got != want {
		t.Errorf("building 12's form posts to %q, want %q", got, want)
	}
}

// While the broker is down, the attention list says a command not confirmed
// waits for the broker, as the device page does; a refusal is the device's.
func TestAttentionCommandWhileBrokerDown(t *testing.T) {
	b := &doorledger.BuildingAttention{BuildingID: 1, Name: "Alder Court", Timezone: "UTC"}
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	item := doorledger.AttentionItem{Kind: doorledger.AttentionCommand, DeviceID: 4, Label: "Acme K2", At: at, Status: "not_confirmed"}
	for _, tt := range []struct {
		status     string
		brokerDown bool
		want       string
	}{
		{"not_confirmed", false, "Device 4: Acme K2 — command of 2026-12-07 09:00 UTC not confirmed"},
		{"not_confirmed", true, "Device 4: Acme K2 — command of 2026-12-07 09:00 UTC waiting for the broker (the portal cannot reach it)"},
		{"refused", true, "Device 4: Acme K2 — command of 2026-12-07 09:00 UTC refused by the device"},
	} {
		item.Status = tt.status
		if got := attentionItemText(b, item, at.Add(time.Hour), tt.brokerDown); got != tt.want {
			t.Errorf("%s, broker down %v: %q\nwant %q", tt.status, tt.brokerDown, got, tt.want)
		}
	}
}
