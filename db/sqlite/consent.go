package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/namecheck"
)

// ConsentService implements doorledger.ConsentService.
type ConsentService struct {
	db *DB
	// BaseURL is the portal's public address, for the links in mail.
	BaseURL string
}

// NewConsentService returns the SQLite consent service.
func NewConsentService(db *DB, baseURL string) *ConsentService {
	return &ConsentService{db: db, BaseURL: strings.TrimRight(baseURL, "/")}
}

var _ doorledger.ConsentService = (*ConsentService)(nil)

// notFoundLink is the one answer for every bad token: unknown, used, expired or
// for a consent that moved on. A guesser learns nothing from it.
var notFoundLink = doorledger.Errorf(doorledger.ENOTFOUND, "This link is not valid: it was already used, it expired, or it was never issued. Ask the building's manager or the installer for a new one.")

const consentColumns = `c.id, c.building_id, b.name, c.installer_id, u.name, u.company, c.signer_id, s.name, s.title, s.email,
	c.device_id, c.vendor, c.model, c.serial, c.location, c.opens, c.mode, c.requested_at, c.status, c.status_at, c.status_note,
	c.terms, c.terms_sha256, c.typed_name, c.signature_png, c.signed_at, c.signed_tz, c.signed_ip, c.signed_ua, c.method, c.expires_at, c.renewal_of,
	s.active, s.removed_at, c.typed_name_differs, c.policy_id, c.request_expires_at, c.expired_at, c.resend_of`

const consentFrom = ` FROM consents c JOIN buildings b ON b.id = c.building_id JOIN users u ON u.id = c.installer_id JOIN signers s ON s.id = c.signer_id`

// scannedConsent is a consent row as read, before loadRequest completes it.
type scannedConsent struct {
	*doorledger.Consent
	policyID sql.NullInt64
}

func scanConsent(row interface{ Scan(...any) error }) (scannedConsent, error) {
	var c doorledger.Consent
	var mode, requested, statusAt string
	var deviceID, renewalOf, nameDiffers, policyID, resendOf sql.NullInt64
	var terms, termsHash, typed, tz, ip, ua, method sql.NullString
	var png []byte
	var signedAt, expires time.Time
	err := row.Scan(&c.ID, &c.BuildingID, &c.BuildingName, &c.InstallerID, &c.Installer, &c.Company, &c.SignerID,
		&c.Signer.Name, &c.Signer.Title, &c.Signer.Email, &deviceID, &c.Device.Vendor, &c.Device.Model, &c.Device.Serial,
		&c.Device.Location, &c.Device.Opens, &mode, &requested, &c.Status, &statusAt, &c.StatusNote,
		&terms, &termsHash, &typed, &png, nullTime{&signedAt}, &tz, &ip, &ua, &method, nullTime{&expires}, &renewalOf,
		&c.Signer.Active, nullTime{&c.Signer.RemovedAt}, &nameDiffers, &policyID, nullTime{&c.RequestExpiresAt}, nullTime{&c.ExpiredAt}, &resendOf)
	if err != nil {
		return scannedConsent{}, err
	}
	if c.Status == doorledger.ConsentAwaiting && !c.ExpiredAt.IsZero() {
		c.Status = doorledger.ConsentExpired
	}
	c.Terms, c.TermsSHA256 = terms.String, termsHash.String
	c.Signer.ID, c.Signer.BuildingID = c.SignerID, c.BuildingID
	c.DeviceID, c.RenewalOf, c.ResendOf = deviceID.Int64, renewalOf.Int64, resendOf.Int64
	c.InPerson = mode == "in_person"
	c.RequestedAt, c.StatusAt, c.ExpiresAt = parseTime(requested), parseTime(statusAt), expires
	if !signedAt.IsZero() {
		c.Signature = &doorledger.ConsentSignature{
			Terms: terms.String, TermsSHA256: termsHash.String, TypedName: typed.String, SignaturePNG: png,
			SignedAt: signedAt, Timezone: tz.String, IP: ip.String, UserAgent: ua.String,
			Method: doorledger.VerificationMethod(method.String), SignerID: c.SignerID,
			NameDiffers: nameDiffers.Int64 == 1,
		}
		if !nameDiffers.Valid { // signed before the comparison was recorded: compare now
			c.Signature.NameDiffers = !namecheck.Match(typed.String, c.Signer.Name)
		}
	}
	return scannedConsent{&c, policyID}, nil
}

func findConsent(ctx context.Context, q querier, id int64) (*doorledger.Consent, error) {
	sc, err := scanConsent(q.QueryRowContext(ctx, `SELECT `+consentColumns+consentFrom+` WHERE c.id = ?`, id))
	if err != nil {
		return nil, notFound(err, "Consent not found.")
	}
	if err := loadRequest(ctx, q, sc.Consent, sc.policyID); err != nil {
		return nil, err
	}
	return sc.Consent, loadPaper(ctx, q, sc.Consent)
}

// queryConsents lists the consents a query selects (consentColumns), each
// completed by loadRequest.
func queryConsents(ctx context.Context, q querier, query string, args ...any) ([]*doorledger.Consent, error) {
	list, err := queryAll(ctx, q, scanConsent, query, args...)
	if err != nil {
		return nil, err
	}
	out := make([]*doorledger.Consent, len(list))
	for i, sc := range list {
		if err := loadRequest(ctx, q, sc.Consent, sc.policyID); err != nil {
			return nil, err
		}
		out[i] = sc.Consent
	}
	return out, nil
}

// checkConsent loads a consent the caller may see: the building's people, and of
// installers only the one who asked. Anything else is ENOTFOUND.
func checkConsent(ctx context.Context, q querier, id int64) (*doorledger.Consent, error) {
	c, err := findConsent(ctx, q, id)
	if err != nil {
		return nil, err
	}
	cl := callerFrom(ctx)
	if err := checkBuilding(ctx, q, cl, c.BuildingID); err != nil {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Consent not found.")
	}
	if cl.role() == doorledger.RoleInstaller && c.InstallerID != cl.id() {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Consent not found.")
	}
	return c, nil
}

func (tx *Tx) consentEvent(ctx context.Context, consentID int64, kind, note string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO consent_events (consent_id, at, kind, note, ip) VALUES (?, ?, ?, ?, ?)`,
		consentID, formatTime(tx.now), kind, note, doorledger.IPFromContext(ctx))
	return err
}

// buildingLoc is the building's time zone (UTC if it cannot be read).
func buildingLoc(ctx context.Context, q querier, buildingID int64) *time.Location {
	b, err := findBuilding(ctx, q, buildingID)
	if err != nil {
		return time.UTC
	}
	return b.Location()
}

func orDash(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// statusWords is how a consent status reads in a message.
func statusWords(s doorledger.ConsentStatus) string {
	return strings.ReplaceAll(string(s), "_", " ")
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
