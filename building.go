package doorledger

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Building is a property whose front doors Doorledger watches over.
type Building struct {
	ID       int64
	Name     string
	Address  string
	Timezone string // IANA name, e.g. America/New_York
	// ConsentMonths is how long a signed consent lasts before it lapses unless renewed.
	ConsentMonths int
	CreatedAt     time.Time
	Signers       []*Signer // the roster of authorized signers (active ones)
}

// Location returns the building's time zone (UTC if the name does not load).
func (b *Building) Location() *time.Location { return Location(b.Timezone) }

var locations sync.Map // time zone name → *time.Location

// Location returns the time zone of an IANA name, loaded from the zone data
// once per name and shared (a *time.Location is safe for concurrent use): a
// page listing a thousand buildings would otherwise read the zone files a
// thousand times. UTC when the name is empty or does not load; only names
// that load are kept, so the map holds at most the zone database's names.
func Location(name string) *time.Location {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		return time.UTC
	}
	locations.Store(name, loc)
	return loc
}

// BuildingInput is what a form creates or edits.
type BuildingInput struct {
	Name          string
	Address       string
	Timezone      string
	ConsentMonths int // 0: the default, 12
}

// Validate checks and normalizes the fields.
func (in *BuildingInput) Validate() error {
	v := Validation{}
	in.Name = strings.TrimSpace(in.Name)
	in.Address = strings.TrimSpace(in.Address)
	in.Timezone = strings.TrimSpace(in.Timezone)
	if in.Name == "" {
		v.Add("name", "Enter the building's name.")
	} else if len(in.Name) > 200 {
		v.Add("name", "Keep the name under 200 characters.")
	}
	ValidateLine(v, "name", in.Name)
	if in.Address == "" {
		v.Add("address", "Enter the street address.")
	} else if len(in.Address) > 500 {
		v.Add("address", "Keep the address under 500 characters.")
	}
	ValidateLine(v, "address", in.Address)
	if in.Timezone == "" {
		v.Add("timezone", "Choose the building's time zone.")
	} else if _, err := time.LoadLocation(in.Timezone); err != nil || in.Timezone == "Local" {
		v.Add("timezone", "Use a time zone name such as America/New_York.")
	}
	if in.ConsentMonths == 0 {
		in.ConsentMonths = DefaultConsentMonths
	} else if in.ConsentMonths < 1 || in.ConsentMonths > 120 {
		v.Add("consent_months", "Use a period from 1 to 120 months.")
	}
	return v.Err()
}

// DefaultConsentMonths is how long a consent lasts unless the building says otherwise.
const DefaultConsentMonths = 12

// Signer is an authorized signer on a building's roster: an owner or a board
// officer who may consent to a device. Signers have no account; they are reached
// only through the address on the roster, which installers can never change.
type Signer struct {
	ID         int64
	BuildingID int64
	Name       string
	Title      string // e.g. "Board president"
	Email      string
	Active     bool      // removed signers stay for the record but can no longer be asked or sign
	RemovedAt  time.Time // when a removed signer was taken off the roster (zero if unknown)
}

// SignerInput is what the roster form adds.
type SignerInput struct {
	Name  string
	Title string
	Email string
}

// Validate checks and normalizes the fields.
func (in *SignerInput) Validate() error {
	v := Validation{}
	in.Name = strings.TrimSpace(in.Name)
	in.Title = strings.TrimSpace(in.Title)
	in.Email = strings.TrimSpace(strings.ToLower(in.Email))
	if in.Name == "" {
		v.Add("signer_name", "Enter the signer's full name.")
	} else if len(in.Name) > 200 {
		v.Add("signer_name", "Keep the name under 200 characters.")
	}
	ValidateLine(v, "signer_name", in.Name)
	if in.Title == "" {
		v.Add("signer_title", "Enter the signer's title, e.g. Board president.")
	} else if len(in.Title) > 200 {
		v.Add("signer_title", "Keep the title under 200 characters.")
	}
	ValidateLine(v, "signer_title", in.Title)
	ValidateEmail(v, "signer_email", in.Email)
	return v.Err()
}

// Grant gives a user access to a building in their role.
type Grant struct {
	BuildingID int64
	User       *User
	CreatedAt  time.Time
}

// BuildingService stores buildings, rosters and grants. Every method reads the
// signed-in user from ctx: a user without a grant on a building gets ENOTFOUND for
// it and everything under it; a grant without the right role gets EFORBIDDEN.
type BuildingService interface {
	// FindBuildingByID returns the building with its active roster.
	FindBuildingByID(ctx context.Context, id int64) (*Building, error)
	// FindBuildings lists the buildings the caller may see.
	FindBuildings(ctx context.Context) ([]*Building, error)
	// CreateBuilding (admins). EINVALID.
	CreateBuilding(ctx context.Context, in BuildingInput) (*Building, error)
	// UpdateBuilding (admins, the building's managers). EINVALID.
	UpdateBuilding(ctx context.Context, id int64, in BuildingInput) (*Building, error)
	// AddSigner adds to the roster (admins, managers). EINVALID, ECONFLICT for a duplicate email.
	AddSigner(ctx context.Context, buildingID int64, in SignerInput) (*Signer, error)
	// RemoveSigner takes a signer off the roster (admins, managers).
	RemoveSigner(ctx context.Context, buildingID, signerID int64) error
	// FindGrants lists who has access (admins, managers).
	FindGrants(ctx context.Context, buildingID int64) ([]*Grant, error)
	// GrantAccess gives a user access (admins). ECONFLICT if granted already.
	GrantAccess(ctx context.Context, buildingID, userID int64) error
	// RevokeAccess removes a grant (admins).
	RevokeAccess(ctx context.Context, buildingID, userID int64) error
}

// CanManage reports whether u may change the building (given u sees it at all).
func CanManage(u *User) bool {
	return u != nil && (u.Role == RoleAdmin || u.Role == RoleManager)
}

// Invitation asks an installer to work on a building: they set a password
// through a one-time link (or, with an account already, accept it) and get access.
type Invitation struct {
	ID         int64
	BuildingID int64
	Email      string
	Name       string
	Company    string
	InvitedBy  int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt time.Time
	Withdrawn  time.Time
}

// Status is "pending", "accepted", "withdrawn" or "expired" at now.
func (i *Invitation) Status(now time.Time) string {
	switch {
	case !i.AcceptedAt.IsZero():
		return "accepted"
	case !i.Withdrawn.IsZero():
		return "withdrawn"
	case now.After(i.ExpiresAt):
		return "expired"
	}
	return "pending"
}

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// InvitationService invites installers to buildings.
type InvitationService interface {
	// Invite mails an installer a one-time link (managers). EINVALID.
	Invite(ctx context.Context, buildingID int64, email, name, company string) (*Invitation, error)
	// FindInvitations lists a building's invitations (managers).
	FindInvitations(ctx context.Context, buildingID int64) ([]*Invitation, error)
	// Withdraw cancels a pending invitation (managers).
	WithdrawInvitation(ctx context.Context, buildingID, id int64) error
	// OpenInvitation resolves a link: ENOTFOUND when unknown, used, withdrawn or expired.
	OpenInvitation(ctx context.Context, token string) (*Invitation, *Building, bool, error)
	// AcceptInvitation sets the new installer's password (or accepts for an existing
	// installer account with its password) and grants access; returns the user.
	AcceptInvitation(ctx context.Context, token, password string) (*User, error)
}
