package views

import (
	"slices"
	"strings"

	"github.com/doorledger/doorledger"
)

// VendorsView is the admin page of vendor integrations.
type VendorsView struct {
	Integrations []*doorledger.VendorIntegration
	Buildings    []*doorledger.Building // offered to a new integration
	Devices      []*doorledger.Device   // devices in service, to put under an integration
	Form         Form                   // the new integration's form
	Error        string                 // a refused action, shown at the top
	NewKey       string                 // a key just made: shown once, never stored in clear
	NewKeyFor    *doorledger.VendorIntegration
	APIBase      string // the portal's address, for the endpoints shown
}

// vendorOf returns the integration controlling device id, or nil.
func (v VendorsView) vendorOf(id int64) *doorledger.VendorIntegration {
	for _, vi := range v.Integrations {
		if _, found := slices.BinarySearch(vi.DeviceIDs, id); found {
			return vi
		}
	}
	return nil
}

// choicesFor lists the active integrations that cover a building.
func (v VendorsView) choicesFor(buildingID int64) []*doorledger.VendorIntegration {
	var out []*doorledger.VendorIntegration
	for _, vi := range v.Integrations {
		if !vi.Retired && vi.CoversBuilding(buildingID) {
			out = append(out, vi)
		}
	}
	return out
}

// vendorFormChecked reports whether a multi-valued field (comma-joined) holds value.
func vendorFormChecked(f Form, name, value string) bool {
	for _, v := range strings.Split(f.Values[name], ",") {
		if v == value {
			return true
		}
	}
	return false
}
