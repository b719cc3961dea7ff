package doorledger

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Privacy profiles a building may opt into. Under New York City's Tenant Data
// Privacy Act (Local Law 63 of 2021, Admin. Code §26-3001 ff., smart access
// systems in multiple dwellings) the portal checks, for a building under the
// profile:
//
//   - identifiable unlock data (the courier, package, credential or person
//     reference an event carries: UnlockEvent.ActorRef) older than
//     RedactAfter is removed by the retention job; the removal is a journal
//     entry (RedactAction) and the log still verifies;
//   - no device is enabled unless the vendor disclosure record it names is
//     complete (VendorDisclosure.Complete), enforced by the database too;
//   - the building publishes a tenant privacy notice made from those records.
const (
	PrivacyProfileNone = ""
	PrivacyProfileTDPA = "nyc_tdpa"
)

// PrivacyProfileName names a profile for people.
func PrivacyProfileName(p string) string {
	switch p {
	case PrivacyProfileTDPA:
		return "New York City Tenant Data Privacy Act (Local Law 63 of 2021)"
	case PrivacyProfileNone:
		return "none"
	}
	return p
}

// RedactAfter is how long identifiable unlock data is kept under the profile.
const RedactAfter = 90 * 24 * time.Hour

// RedactAction is the journal action of a redaction: the retention job
// removed the identifiable fields of the events it names. Its detail names
// the events ("ids", as auditlog.FormatIDRanges writes them), their number
// ("events"), the cutoff ("before"), the fields removed ("fields") and the
// digest of what was logged and what remains of each ("digest",
// auditlog.RedactionHasher).
const RedactAction = "unlock.redact"

// RedactedFields are the event fields a redaction empties.
var RedactedFields = []string{"actor_ref"}

// TenantNoticeSuffix follows a notice's address (NoticePath + slug) to give
// the building's tenant privacy notice; with ".pdf" after it, its PDF.
const TenantNoticeSuffix = "/privacy"

// VendorDisclosure is what a device's vendor discloses of the data it
// collects, as the law asks. Every device names one (Device.DisclosureID).
type VendorDisclosure struct {
	ID            int64
	BuildingID    int64
	LegalName     string // the vendor's legal name, e.g. "Amazon.com Services LLC"
	DataCollected string // what the device collects
	Purpose       string // why
	Retention     string // how long the vendor keeps it
	PolicyURL     string // the vendor's privacy policy
	UpdatedAt     time.Time
	Devices       int // the building's devices that name it
}

// Missing lists the fields the record lacks, by form field name.
func (d *VendorDisclosure) Missing() []string {
	var out []string
	for _, f := range [...]struct{ name, v string }{{"legal_name", d.LegalName}, {"data_collected", d.DataCollected},
		{"purpose", d.Purpose}, {"retention", d.Retention}} {
		if strings.TrimSpace(f.v) == "" {
			out = append(out, f.name)
		}
	}
	if !validPolicyURL(d.PolicyURL) {
		out = append(out, "policy_url")
	}
	return out
}

// Complete reports whether the record holds every field the law lists.
func (d *VendorDisclosure) Complete() bool { return d != nil && len(d.Missing()) == 0 }

func validPolicyURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && strings.TrimSpace(s) == s
}

// VendorDisclosureInput is what the form saves.
type VendorDisclosureInput struct {
	LegalName, DataCollected, Purpose, Retention, PolicyURL string
}

// Validate checks and trims the fields: every one is required.
func (in *VendorDisclosureInput) Validate() error {
	v := Validation{}
	for _, f := range [...]struct {
		name string
		p    *string
		max  int
		msg  string
	}{
		{"legal_name", &in.LegalName, 200, "Enter the vendor's legal name."},
		{"data_collected", &in.DataCollected, 2000, "Say what data the device collects."},
		{"purpose", &in.Purpose, 2000, "Say why the vendor collects it."},
		{"retention", &in.Retention, 1000, "Say how long the vendor keeps it."},
		{"policy_url", &in.PolicyURL, 500, "Give the address of the vendor's privacy policy (https://…)."},
	} {
		*f.p = strings.TrimSpace(*f.p)
		switch {
		case *f.p == "":
			v.Add(f.name, f.msg)
		case len(*f.p) > f.max:
			v.Add(f.name, "Keep it under "+strconv.Itoa(f.max)+" characters.")
		}
	}
	ValidateLine(v, "legal_name", in.LegalName)
	ValidateLine(v, "policy_url", in.PolicyURL)
	if in.PolicyURL != "" && !validPolicyURL(in.PolicyURL) {
		v.Add("policy_url", "Give the address of the vendor's privacy policy (https://…).")
	}
	return v.Err()
}

// PrivacyCheck is one check of a profile, as the board report states it.
type PrivacyCheck struct {
	Name   string // what is checked
	Holds  bool
	Detail string // what fails, or what was found
}

// PrivacyStatus is a building's privacy profile and whether its checks hold.
type PrivacyStatus struct {
	BuildingID int64
	Profile    string    // PrivacyProfileNone or PrivacyProfileTDPA
	Since      time.Time // when it was last set; zero: never
	Checks     []PrivacyCheck
	// Disclosures are the building's vendor disclosure records; Devices its
	// devices in service, with the record each names.
	Disclosures []*VendorDisclosure
	Devices     []*PrivacyDevice
	Redacted    int64 // events whose identifiable data was removed
}

// Holds reports whether every check holds.
func (s *PrivacyStatus) Holds() bool {
	for _, c := range s.Checks {
		if !c.Holds {
			return false
		}
	}
	return true
}

// PrivacyDevice is a device as the privacy page shows it.
type PrivacyDevice struct {
	ID           int64
	Vendor       string
	Model        string
	Enabled      bool // desired state enabled
	DisclosureID int64
}

// TenantPrivacyNotice is the building's tenant privacy notice: public, made
// from the disclosure records and the portal's own rules. It names no person.
type TenantPrivacyNotice struct {
	BuildingName string
	Slug         string
	Contact      string // how to reach the manager
	Profile      string
	// Vendors: each disclosure record named by a device in service, with the
	// devices (number, model, what they open) that name it.
	Vendors []*TenantNoticeVendor
	// Undisclosed counts devices in service that name no complete record.
	Undisclosed   int
	RedactDays    int // identifiable data removed after this many days
	RetentionDays int // events deleted after this many days
	Now           time.Time
}

// TenantNoticeVendor is a vendor's disclosure with the devices that name it.
type TenantNoticeVendor struct {
	Disclosure VendorDisclosure
	Devices    []string // e.g. "#3 Acme Relay 2 (lobby door)"
}

// AddDevice adds a device in service to the notice: under the record of
// records it names (disclosureID) when that record is complete, else to
// the count of those undisclosed. Vendors keep the order first named.
func (n *TenantPrivacyNotice) AddDevice(id int64, vendor, model, opens string, disclosureID int64, records []*VendorDisclosure) {
	var d *VendorDisclosure
	for _, x := range records {
		if x.ID == disclosureID {
			d = x
		}
	}
	if !d.Complete() {
		n.Undisclosed++
		return
	}
	var v *TenantNoticeVendor
	for _, x := range n.Vendors {
		if x.Disclosure.ID == d.ID {
			v = x
		}
	}
	if v == nil {
		v = &TenantNoticeVendor{Disclosure: *d}
		n.Vendors = append(n.Vendors, v)
	}
	label := "#" + strconv.FormatInt(id, 10) + " " + strings.TrimSpace(vendor+" "+model)
	if opens != "" {
		label += " (" + opens + ")"
	}
	v.Devices = append(v.Devices, label)
}

// PrivacyService is the privacy profile of buildings.
type PrivacyService interface {
	// PrivacyStatus returns a building's profile, records and checks
	// (managers, board). ENOTFOUND.
	PrivacyStatus(ctx context.Context, buildingID int64) (*PrivacyStatus, error)
	// SetPrivacyProfile turns a profile on or off (managers). Journaled. EINVALID.
	SetPrivacyProfile(ctx context.Context, buildingID int64, profile string) error
	// SaveVendorDisclosure creates (id 0) or edits a record (managers).
	// EINVALID with field messages; ECONFLICT when an enabled device of a
	// building under the profile names it and the edit would leave it incomplete.
	SaveVendorDisclosure(ctx context.Context, buildingID, id int64, in VendorDisclosureInput) (*VendorDisclosure, error)
	// SetDeviceDisclosure names the record a device's vendor disclosed
	// (managers; 0 names none). Journaled. ENOTFOUND, ECONFLICT.
	SetDeviceDisclosure(ctx context.Context, buildingID, deviceID, disclosureID int64) error
	// TenantNotice returns the building's tenant privacy notice, by the
	// public notice's slug. ENOTFOUND, also when the building is under no profile.
	TenantNotice(ctx context.Context, slug string) (*TenantPrivacyNotice, error)
	// RedactUnlocks removes the identifiable data of events older than
	// RedactAfter at now in every building under the profile (the system's
	// job; admins). It returns how many events it redacted.
	RedactUnlocks(ctx context.Context, now time.Time) (int64, error)
}

// NoticeSection is a section of the tenant privacy notice.
type NoticeSection struct {
	Title string
	Paras []string
}

// Sections writes the notice's sections, in the order the law lists them:
// the data collected, its purpose, its retention, third parties and their
// privacy policies, security, how to get and correct one's data, and breach
// notification. The page and the PDF print these same words.
func (n *TenantPrivacyNotice) Sections() []NoticeSection {
	devices := func(v *TenantNoticeVendor) string { return strings.Join(v.Devices, "; ") }
	contact := n.Contact
	if contact == "" {
		contact = "the building's management office"
	}
	var data, purpose, retention, third []string
	data = append(data, "This portal records, for every door opening by a delivery device: when it happened, which device, whether the door opened, "+
		"how (courier app, keypad, remote), and a courier or package reference if the device sends one. It records no name, photo or video.")
	purpose = append(purpose, "The portal records door openings so that the building's owners can see who opened the door and on whose consent, "+
		"and be warned of openings that should not have happened.")
	retention = append(retention, "Courier and package references are removed "+strconv.Itoa(n.RedactDays)+" days after the door opening. "+
		"The record that the door opened (time, device, result, warnings) is kept "+strconv.Itoa(n.RetentionDays)+" days, then deleted.")
	for _, v := range n.Vendors {
		d := v.Disclosure
		data = append(data, d.LegalName+" ("+devices(v)+"): "+d.DataCollected)
		purpose = append(purpose, d.LegalName+": "+d.Purpose)
		retention = append(retention, d.LegalName+": "+d.Retention)
		third = append(third, d.LegalName+", privacy policy: "+d.PolicyURL)
	}
	if len(third) == 0 {
		third = append(third, "No device in service names a vendor with a complete disclosure.")
	}
	if n.Undisclosed > 0 {
		third = append(third, strconv.Itoa(n.Undisclosed)+" device(s) in service name no complete vendor disclosure; "+
			"under this building's privacy profile they cannot be enabled.")
	}
	return []NoticeSection{
		{"Data collected", data},
		{"Purpose", purpose},
		{"Retention", retention},
		{"Third parties and their privacy policies", third},
		{"Security", []string{"Each device signs in with its own credential, stored only as a hash, and may reach only its own messages. " +
			"Only the building's managers and board see the records, and every action on them is kept in a tamper-evident log signed by the portal. " +
			"No device is enabled without the signed consent of an authorized signer of the building."}},
		{"How to get or correct your data", []string{"You may ask for a copy of the data the portal and these vendors hold about you, " +
			"and for it to be corrected. Ask " + contact + "."}},
		{"Breach notification", []string{"If data about residents is disclosed without authorization, the building's management tells the " +
			"residents concerned, as the law requires, what was disclosed, when, and what is being done. Questions: " + contact + "."}},
	}
}
