package postgres

import (
	"context"
	"database/sql"
	"strconv"
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
	var mode string
	var deviceID, renewalOf, policyID, resendOf sql.NullInt64
	var nameDiffers sql.NullBool
	var terms, termsHash, typed, tz, ip, ua, method sql.NullString
	var png []byte
	var signedAt, expires time.Time
	err := row.Scan(&c.ID, &c.BuildingID, &c.BuildingName, &c.InstallerID, &c.Installer, &c.Company, &c.SignerID,
		&c.Signer.Name, &c.Signer.Title, &c.Signer.Email, &deviceID, &c.Device.Vendor, &c.Device.Model, &c.Device.Serial,
		&c.Device.Location, &c.Device.Opens, &mode, at(&c.RequestedAt), &c.Status, at(&c.StatusAt), &c.StatusNote,
		&terms, &termsHash, &typed, &png, at(&signedAt), &tz, &ip, &ua, &method, at(&expires), &renewalOf,
		&c.Signer.Active, at(&c.Signer.RemovedAt), &nameDiffers, &policyID, at(&c.RequestExpiresAt), at(&c.ExpiredAt), &resendOf)
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
	c.ExpiresAt = expires
	if !signedAt.IsZero() {
		c.Signature = &doorledger.ConsentSignature{
			Terms: terms.String, TermsSHA256: termsHash.String, TypedName: typed.String, SignaturePNG: png,
			SignedAt: signedAt, Timezone: tz.String, IP: ip.String, UserAgent: ua.String,
			Method: doorledger.VerificationMethod(method.String), SignerID: c.SignerID,
			NameDiffers: nameDiffers.Bool,
		}
		if !nameDiffers.Valid { // signed before the comparison was recorded: compare now
			c.Signature.NameDiffers = !namecheck.Match(typed.String, c.Signer.Name)
		}
	}
	return scannedConsent{&c, policyID}, nil
}

// findConsent reads a consent, complete. In a write transaction it first
// takes the consent's row until the transaction ends: package sqlite had one
// writer, while here two signers of one request can sign at once (or a
// signer sign while a manager resends, a code is tried twice…), and each
// must decide on what the other wrote — whether the policy is satisfied
// now, whether it was sent again already. Every change of a consent reads
// it first, so the changes of one consent take turns (FOR NO KEY UPDATE:
// rows that merely name it, such as its timeline, are not held up).
func findConsent(ctx context.Context, q querier, id int64) (*doorledger.Consent, error) {
	if tx, ok := q.(*Tx); ok {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM consents WHERE id = $1 FOR NO KEY UPDATE`, id); err != nil {
			return nil, err
		}
	}
	sc, err := scanConsent(q.QueryRow(ctx, `SELECT `+consentColumns+consentFrom+` WHERE c.id = $1`, id))
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
	_, err := tx.Exec(ctx, `INSERT INTO consent_events (consent_id, at, kind, note, ip) VALUES ($1, $2, $3, $4, $5)`,
		consentID, ts(tx.now), kind, note, doorledger.IPFromContext(ctx))
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

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// detailTime is a time as package sqlite writes it into a journal entry's
// detail, so that entries read the same on either backend.
func detailTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// lockKey takes, until the transaction ends, the advisory lock of one kind
// of write to one building: where package sqlite counted then wrote under
// its one writer (a cap on open reports, say), writers here take turns.
func (tx *Tx) lockKey(ctx context.Context, kind string, id int64) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(kind, itoa(id)))
	return err
}
