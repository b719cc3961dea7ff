package db

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
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
	c.terms, c.terms_sha256, c.typed_name, c.signature_png, c.signed_at, c.signed_tz, c.signed_ip, c.signed_ua, c.method, c.expires_at, c.renewal_of`

const consentFrom = ` FROM consents c JOIN buildings b ON b.id = c.building_id JOIN users u ON u.id = c.installer_id JOIN signers s ON s.id = c.signer_id`

func scanConsent(row interface{ Scan(...any) error }) (*doorledger.Consent, error) {
	var c doorledger.Consent
	var mode, requested, statusAt string
	var deviceID, renewalOf sql.NullInt64
	var terms, termsHash, typed, tz, ip, ua, method sql.NullString
	var png []byte
	var signedAt, expires time.Time
	err := row.Scan(&c.ID, &c.BuildingID, &c.BuildingName, &c.InstallerID, &c.Installer, &c.Company, &c.SignerID,
		&c.Signer.Name, &c.Signer.Title, &c.Signer.Email, &deviceID, &c.Device.Vendor, &c.Device.Model, &c.Device.Serial,
		&c.Device.Location, &c.Device.Opens, &mode, &requested, &c.Status, &statusAt, &c.StatusNote,
		&terms, &termsHash, &typed, &png, nullTime{&signedAt}, &tz, &ip, &ua, &method, nullTime{&expires}, &renewalOf)
	if err != nil {
		return nil, err
	}
	c.Signer.ID, c.Signer.BuildingID = c.SignerID, c.BuildingID
	c.DeviceID, c.RenewalOf = deviceID.Int64, renewalOf.Int64
	c.InPerson = mode == "in_person"
	c.RequestedAt, c.StatusAt, c.ExpiresAt = parseTime(requested), parseTime(statusAt), expires
	if !signedAt.IsZero() {
		c.Signature = &doorledger.ConsentSignature{
			Terms: terms.String, TermsSHA256: termsHash.String, TypedName: typed.String, SignaturePNG: png,
			SignedAt: signedAt, Timezone: tz.String, IP: ip.String, UserAgent: ua.String,
			Method: doorledger.VerificationMethod(method.String), SignerID: c.SignerID,
		}
	}
	return &c, nil
}

func findConsent(ctx context.Context, q querier, id int64) (*doorledger.Consent, error) {
	c, err := scanConsent(q.QueryRowContext(ctx, `SELECT `+consentColumns+consentFrom+` WHERE c.id = ?`, id))
	return c, notFound(err, "Consent not found.")
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

// issueToken stores a new one-time token for the consent and returns it.
func (tx *Tx) issueToken(ctx context.Context, consentID int64, purpose string, ttl time.Duration) (string, error) {
	token, hash := newToken()
	_, err := tx.ExecContext(ctx, `INSERT INTO consent_tokens (consent_id, purpose, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		consentID, purpose, hash, formatTime(tx.now), formatTime(tx.now.Add(ttl)))
	return token, err
}

// useToken resolves a live token of purpose; with consume it is marked used.
func (tx *Tx) useToken(ctx context.Context, token, purpose string, consume bool) (int64, error) {
	var id, consentID int64
	err := tx.QueryRowContext(ctx, `SELECT id, consent_id FROM consent_tokens
		WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?`, HashToken(token), purpose, formatTime(tx.now)).Scan(&id, &consentID)
	if err == sql.ErrNoRows {
		return 0, notFoundLink
	} else if err != nil {
		return 0, err
	}
	if consume {
		if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE id = ?`, formatTime(tx.now), id); err != nil {
			return 0, err
		}
	}
	return consentID, nil
}

func (s *ConsentService) link(path, token string) string { return s.BaseURL + path + token }

func (s *ConsentService) RequestConsent(ctx context.Context, buildingID int64, r doorledger.ConsentRequest) (*doorledger.Consent, error) {
	cl := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := checkBuilding(ctx, tx, cl, buildingID); err != nil {
		return nil, err
	}
	if cl.role() != doorledger.RoleInstaller {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only installers submit consent requests.")
	}
	v := doorledger.Validation{}
	if err := r.Validate(); err != nil {
		for k, m := range doorledger.ErrorFields(err) {
			v.Add(k, m)
		}
	}
	if r.SignerID > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signers WHERE id = ? AND building_id = ? AND active = 1`, r.SignerID, buildingID).Scan(&n); err != nil {
			return nil, err
		} else if n == 0 {
			v.Add("signer_id", "Choose a signer from this building's roster.")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	mode := "link"
	if r.InPerson {
		mode = "in_person"
	}
	id, err := tx.insertConsent(ctx, buildingID, cl.id(), r.SignerID, r.Device, mode, 0)
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO devices (building_id, vendor, model, serial, location, opens, installer_id, consent_id, origin, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'consent_request', ?)`,
		buildingID, r.Device.Vendor, r.Device.Model, r.Device.Serial, r.Device.Location, r.Device.Opens, cl.id(), id, formatTime(tx.now))
	if isUniqueViolation(err) {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"serial": "A device of this vendor with this serial number is already registered in this building."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert device: %w", err)
	}
	deviceID, _ := res.LastInsertId()
	if _, err := tx.ExecContext(ctx, `UPDATE consents SET device_id = ? WHERE id = ?`, deviceID, id); err != nil {
		return nil, err
	}
	for _, p := range r.Photos {
		sum := sha256.Sum256(p.Data)
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent_photos (consent_id, content_type, data, sha256, created_at) VALUES (?, ?, ?, ?, ?)`,
			id, p.ContentType, p.Data, hex.EncodeToString(sum[:]), formatTime(tx.now)); err != nil {
			return nil, fmt.Errorf("insert photo: %w", err)
		}
	}
	if err := tx.audit(ctx, "device.register", buildingID, "device", deviceID, map[string]any{"consent": id, "serial": r.Device.Serial}); err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if !r.InPerson {
		if err := s.mailSigningLink(ctx, tx, c); err != nil {
			return nil, err
		}
	}
	return c, tx.Commit()
}

// insertConsent writes a consent request with its "requested" fact and audit entry.
func (tx *Tx) insertConsent(ctx context.Context, buildingID, installerID, signerID int64, d doorledger.DeviceDetails, mode string, renewalOf int64) (int64, error) {
	var renewal any
	if renewalOf != 0 {
		renewal = renewalOf
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status_at, renewal_of)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		buildingID, installerID, signerID, d.Vendor, d.Model, d.Serial, d.Location, d.Opens, mode, formatTime(tx.now), formatTime(tx.now), renewal)
	if err != nil {
		return 0, fmt.Errorf("insert consent: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := tx.consentEvent(ctx, id, "requested", ""); err != nil {
		return 0, err
	}
	return id, tx.audit(ctx, "consent.request", buildingID, "consent", id, map[string]any{"signer": signerID, "mode": mode, "serial": d.Serial, "renewal_of": renewalOf})
}

// mailSigningLink issues the one-time signing link and mails it to the signer's
// registered address.
func (s *ConsentService) mailSigningLink(ctx context.Context, tx *Tx, c *doorledger.Consent) error {
	token, err := tx.issueToken(ctx, c.ID, "sign", doorledger.SigningLinkTTL)
	if err != nil {
		return err
	}
	body := fmt.Sprintf(`Dear %s,

%s of %s asks for your consent, as an authorized signer for %s, to enable a
delivery-access device: %s %s (serial %s), installed at %s. It opens: %s.

Review the full terms and sign or decline here (the link works once, for 7 days):

  %s

If you did not expect this request, decline it or ignore this mail: nothing is
enabled without your signature.

— Doorledger, for the managers of %s
`, c.Signer.Name, c.Installer, orNone(c.Company), c.BuildingName, c.Device.Vendor, c.Device.Model, c.Device.Serial,
		c.Device.Location, c.Device.Opens, s.link("/sign/", token), c.BuildingName)
	if err := tx.queueMail(ctx, &doorledger.Message{To: c.Signer.Email, Subject: "Consent requested: delivery device at " + c.BuildingName,
		Body: body, Kind: "signing_link", BuildingID: c.BuildingID}, ""); err != nil {
		return err
	}
	return tx.consentEvent(ctx, c.ID, "mailed", "signing link to "+c.Signer.Email)
}

func orNone(s string) string {
	if s == "" {
		return "no company given"
	}
	return s
}

func (s *ConsentService) FindConsentByID(ctx context.Context, id int64) (*doorledger.Consent, error) {
	return checkConsent(ctx, s.db.read, id)
}

func (s *ConsentService) FindConsents(ctx context.Context, f doorledger.ConsentFilter) ([]*doorledger.Consent, error) {
	cl := callerFrom(ctx)
	if err := checkBuilding(ctx, s.db.read, cl, f.BuildingID); err != nil {
		return nil, err
	}
	query, args := `SELECT `+consentColumns+consentFrom+` WHERE c.building_id = ?`, []any{f.BuildingID}
	if cl.role() == doorledger.RoleInstaller {
		f.InstallerID = cl.id()
	}
	if f.InstallerID != 0 {
		query += ` AND c.installer_id = ?`
		args = append(args, f.InstallerID)
	}
	return s.list(ctx, query+` ORDER BY c.id DESC`, args...)
}

func (s *ConsentService) FindMySubmissions(ctx context.Context) ([]*doorledger.Consent, error) {
	cl := callerFrom(ctx)
	if err := cl.requireSignedIn(); err != nil {
		return nil, err
	}
	// Only buildings the installer still has access to.
	return s.list(ctx, `SELECT `+consentColumns+consentFrom+`
		JOIN grants g ON g.building_id = c.building_id AND g.user_id = c.installer_id
		WHERE c.installer_id = ? ORDER BY c.id DESC`, cl.id())
}

func (s *ConsentService) list(ctx context.Context, query string, args ...any) ([]*doorledger.Consent, error) {
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*doorledger.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, c)
	}
	return list, rows.Err()
}

func (s *ConsentService) ConsentTimeline(ctx context.Context, id int64) ([]doorledger.ConsentEvent, error) {
	if _, err := checkConsent(ctx, s.db.read, id); err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT at, kind, note FROM consent_events WHERE consent_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []doorledger.ConsentEvent
	for rows.Next() {
		var e doorledger.ConsentEvent
		var at string
		if err := rows.Scan(&at, &e.Kind, &e.Note); err != nil {
			return nil, err
		}
		e.At = parseTime(at)
		list = append(list, e)
	}
	return list, rows.Err()
}

func (s *ConsentService) ConsentPhotos(ctx context.Context, id int64) ([]doorledger.Photo, error) {
	if _, err := checkConsent(ctx, s.db.read, id); err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, content_type, data, sha256 FROM consent_photos WHERE consent_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []doorledger.Photo
	for rows.Next() {
		var p doorledger.Photo
		if err := rows.Scan(&p.ID, &p.ContentType, &p.Data, &p.SHA256); err != nil {
			return nil, err
		}
		list = append(list, p)
	}
	return list, rows.Err()
}

// session builds what the signing page shows for a consent.
func signingSession(ctx context.Context, q querier, c *doorledger.Consent) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	return &doorledger.SigningSession{Consent: c, Building: b, Terms: doorledger.ConsentTerms(c, b)}, nil
}

func (s *ConsentService) OpenSigning(ctx context.Context, token string) (*doorledger.SigningSession, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	id, err := tx.useToken(ctx, token, "sign", false)
	if err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if c.Status != doorledger.ConsentAwaiting {
		return nil, notFoundLink
	}
	var opened int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_events WHERE consent_id = ? AND kind = 'opened'`, id).Scan(&opened); err != nil {
		return nil, err
	}
	if opened == 0 {
		if err := tx.consentEvent(ctx, id, "opened", ""); err != nil {
			return nil, err
		}
	}
	sess, err := signingSession(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	return sess, tx.Commit()
}

// validateSign checks the signer's input.
func validateSign(in *doorledger.SignInput, sess *doorledger.SigningSession) error {
	v := doorledger.Validation{}
	in.TypedName = strings.TrimSpace(in.TypedName)
	if in.TypedName == "" {
		v.Add("typed_name", "Type your full name.")
	} else if len(in.TypedName) > 200 {
		v.Add("typed_name", "Keep your name under 200 characters.")
	}
	doorledger.ValidateLine(v, "typed_name", in.TypedName)
	if !in.AgreeESign {
		v.Add("agree", "Tick the box to agree to sign electronically.")
	}
	if len(in.SignaturePNG) == 0 {
		v.Add("signature", "Draw your signature in the box.")
	}
	return v.Err()
}

// sign records the signature evidence, enables the device, and mails the
// signer a confirmation with the withdraw and "I did not sign this" links.
func (s *ConsentService) sign(ctx context.Context, tx *Tx, c *doorledger.Consent, in doorledger.SignInput, method doorledger.VerificationMethod) (*doorledger.Consent, error) {
	sess, err := signingSession(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	if err := validateSign(&in, sess); err != nil {
		return nil, err
	}
	hash := doorledger.TermsSHA256(sess.Terms)
	if subtle.ConstantTimeCompare([]byte(in.TermsSHA256), []byte(hash)) != 1 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "The terms changed since the page was opened. Please read them again before signing.")
	}
	b := sess.Building
	expires := tx.now.AddDate(0, b.ConsentMonths, 0)
	if len(in.UserAgent) > 500 {
		in.UserAgent = in.UserAgent[:500]
	}
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'signed', status_at = ?, terms = ?, terms_sha256 = ?, typed_name = ?,
		signature_png = ?, signed_at = ?, signed_tz = ?, signed_ip = ?, signed_ua = ?, method = ?, expires_at = ?
		WHERE id = ? AND status = 'awaiting_signature'`,
		formatTime(tx.now), sess.Terms, hash, in.TypedName, in.SignaturePNG, formatTime(tx.now), b.Timezone, in.IP, in.UserAgent,
		method, formatTime(expires), c.ID)
	if err != nil {
		return nil, fmt.Errorf("sign consent %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFoundLink
	}
	if err := tx.consentEvent(ctx, c.ID, "signed", fmt.Sprintf("by %s, verified by %s", in.TypedName, method)); err != nil {
		return nil, err
	}
	signer := fmt.Sprintf("signer %s <%s>", c.Signer.Name, c.Signer.Email)
	if err := tx.auditAs(ctx, 0, signer, "consent.sign", c.BuildingID, "consent", c.ID,
		map[string]any{"terms_sha256": hash, "method": method, "typed_name": in.TypedName, "signer": c.SignerID}); err != nil {
		return nil, err
	}
	// The device now rests on this consent (a renewal moves it here) and is enabled.
	if c.DeviceID != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET consent_id = ?, unconsented = 0 WHERE id = ? AND retired = 0`, c.ID, c.DeviceID); err != nil {
			return nil, err
		}
		sysctx := doorledger.NewSystemContext(ctx, signer)
		if _, err := tx.setDesiredState(sysctx, c.DeviceID, doorledger.StateEnabled, fmt.Sprintf("consent #%d signed", c.ID)); err != nil {
			return nil, err
		}
	}
	withdraw, err := tx.issueToken(ctx, c.ID, "withdraw", expires.Sub(tx.now)+30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	dispute, err := tx.issueToken(ctx, c.ID, "dispute", expires.Sub(tx.now)+30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	loc := b.Location()
	body := fmt.Sprintf(`Dear %s,

You signed consent #%d for %s: %s %s (serial %s) at %s.
Signed: %s (%s), verified by %s.
Terms SHA-256: %s
It lasts until %s unless renewed.

To withdraw this consent (every device under it is disabled at once):
  %s

If you did NOT sign this, report it (the device is disabled and the managers alerted):
  %s

Keep this mail as your copy.
— Doorledger, for the managers of %s
`, c.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
		tx.now.Format("2006-01-02 15:04 MST"), tx.now.In(loc).Format("2006-01-02 15:04 MST"), method, hash,
		expires.In(loc).Format("2006-01-02"), s.link("/consent/withdraw/", withdraw), s.link("/consent/dispute/", dispute), b.Name)
	if err := tx.queueMail(ctx, &doorledger.Message{To: c.Signer.Email, Subject: "You signed consent #" + itoa(c.ID) + " for " + b.Name,
		Body: body, Kind: "signed", BuildingID: b.ID}, ""); err != nil {
		return nil, err
	}
	if err := tx.alertManagers(ctx, b.ID, false, fmt.Sprintf("Consent #%d signed at %s", c.ID, b.Name),
		fmt.Sprintf("%s (%s) signed consent #%d for %s %s, serial %s, at %s. The device is being enabled.\n\n%s/consents/%d\n",
			in.TypedName, c.Signer.Title, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, s.BaseURL, c.ID), ""); err != nil {
		return nil, err
	}
	return findConsent(ctx, tx, c.ID)
}

func (s *ConsentService) Sign(ctx context.Context, token string, in doorledger.SignInput) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	id, err := tx.useToken(ctx, token, "sign", true)
	if err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if c.Status != doorledger.ConsentAwaiting {
		return nil, notFoundLink
	}
	signed, err := s.sign(ctx, tx, c, in, doorledger.VerifyLink)
	if err != nil {
		return nil, err
	}
	return signed, tx.Commit()
}

func (s *ConsentService) Decline(ctx context.Context, token, reason string) error {
	reason, err := doorledger.NormalizeReason(reason, 1000)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	id, err := tx.useToken(ctx, token, "sign", true)
	if err != nil {
		return err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'declined', status_at = ?, status_note = ? WHERE id = ? AND status = 'awaiting_signature'`,
		formatTime(tx.now), reason, id)
	if err != nil {
		return err
	} else if n, _ := res.RowsAffected(); n == 0 {
		return notFoundLink
	}
	if err := tx.consentEvent(ctx, id, "declined", reason); err != nil {
		return err
	}
	if err := tx.auditAs(ctx, 0, fmt.Sprintf("signer %s <%s>", c.Signer.Name, c.Signer.Email), "consent.decline", c.BuildingID, "consent", id, map[string]string{"reason": reason}); err != nil {
		return err
	}
	if err := tx.alertManagers(ctx, c.BuildingID, false, fmt.Sprintf("Consent #%d declined at %s", id, c.BuildingName),
		fmt.Sprintf("%s (%s) declined consent #%d for %s %s, serial %s, at %s.\nReason: %s\n\nThe device stays disabled.\n%s/consents/%d\n",
			c.Signer.Name, c.Signer.Title, id, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, orDash(reason), s.BaseURL, id), ""); err != nil {
		return err
	}
	return tx.Commit()
}

func orDash(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// installerConsent loads a consent of the signed-in installer, awaiting signature.
func installerConsent(ctx context.Context, q querier, id int64) (*doorledger.Consent, error) {
	c, err := checkConsent(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if callerFrom(ctx).role() != doorledger.RoleInstaller {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Consent not found.")
	}
	if c.Status != doorledger.ConsentAwaiting {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "This consent is %s; there is nothing to sign.", strings.ReplaceAll(string(c.Status), "_", " "))
	}
	return c, nil
}

func codeHash(consentID int64, code string) string {
	sum := sha256.Sum256([]byte(itoa(consentID) + ":" + code))
	return hex.EncodeToString(sum[:])
}

func (s *ConsentService) SendCode(ctx context.Context, consentID int64) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	c, err := installerConsent(ctx, tx, consentID)
	if err != nil {
		return err
	}
	var recent int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_codes WHERE consent_id = ? AND created_at > ?`,
		consentID, formatTime(tx.now.Add(-time.Hour))).Scan(&recent); err != nil {
		return err
	}
	if recent >= doorledger.CodesPerHour {
		return doorledger.Errorf(doorledger.ETOOMANY, "%d codes were sent in the last hour. Wait before sending another, or use the signing link instead.", recent)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1000000))
	if err != nil {
		return err
	}
	code := fmt.Sprintf("%06d", n.Int64())
	// A new code replaces any earlier one.
	if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, formatTime(tx.now), consentID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO consent_codes (consent_id, code_hash, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		consentID, codeHash(consentID, code), formatTime(tx.now), formatTime(tx.now.Add(doorledger.CodeTTL))); err != nil {
		return err
	}
	body := fmt.Sprintf(`Dear %s,

%s of %s is with you to sign consent #%d for %s: %s %s (serial %s) at %s.

Your code is: %s

Type it on the installer's screen only if you are there and want to review and
sign. It works for 10 minutes. If you are not with the installer, do not share
it; ignore this mail.

— Doorledger, for the managers of %s
`, c.Signer.Name, c.Installer, orNone(c.Company), c.ID, c.BuildingName, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, code, c.BuildingName)
	if err := tx.queueMail(ctx, &doorledger.Message{To: c.Signer.Email, Subject: "Your code to sign consent #" + itoa(c.ID),
		Body: body, Kind: "signing_code", BuildingID: c.BuildingID}, ""); err != nil {
		return err
	}
	if err := tx.consentEvent(ctx, consentID, "code_sent", "to "+c.Signer.Email); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent.code_sent", c.BuildingID, "consent", consentID, nil); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *ConsentService) InPersonSession(ctx context.Context, consentID int64) (*doorledger.SigningSession, error) {
	c, err := installerConsent(ctx, s.db.read, consentID)
	if err != nil {
		return nil, err
	}
	return signingSession(ctx, s.db.read, c)
}

func (s *ConsentService) SignInPerson(ctx context.Context, consentID int64, code string, in doorledger.SignInput) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	c, err := installerConsent(ctx, tx, consentID)
	if err != nil {
		return nil, err
	}
	var codeID int64
	var hash, expires string
	var attempts int
	err = tx.QueryRowContext(ctx, `SELECT id, code_hash, expires_at, attempts FROM consent_codes WHERE consent_id = ? AND used_at IS NULL ORDER BY id DESC LIMIT 1`, consentID).
		Scan(&codeID, &hash, &expires, &attempts)
	codeErr := func(msg string) error {
		return &doorledger.Error{Code: doorledger.EINVALID, Message: msg, Fields: map[string]string{"code": msg}}
	}
	switch {
	case err == sql.ErrNoRows:
		return nil, codeErr("Send a code to the signer first.")
	case err != nil:
		return nil, err
	case attempts >= doorledger.CodeMaxAttempts:
		return nil, doorledger.Errorf(doorledger.ETOOMANY, "This code was entered wrong %d times. Send a new code.", attempts)
	case !parseTime(expires).After(tx.now):
		return nil, codeErr("The code has expired. Send a new one.")
	}
	code = strings.TrimSpace(code)
	if subtle.ConstantTimeCompare([]byte(codeHash(consentID, code)), []byte(hash)) != 1 {
		// The failed try counts even though nothing else is written.
		if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET attempts = attempts + 1 WHERE id = ?`, codeID); err != nil {
			return nil, err
		}
		if err := tx.consentEvent(ctx, consentID, "code_failed", ""); err != nil {
			return nil, err
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		left := doorledger.CodeMaxAttempts - attempts - 1
		if left <= 0 {
			return nil, doorledger.Errorf(doorledger.ETOOMANY, "That code is not right, and no tries are left. Send a new code.")
		}
		return nil, codeErr(fmt.Sprintf("That code is not right. %d tries left.", left))
	}
	// Check the rest of the input before the code is spent, so a missing
	// signature does not cost the signer their code.
	sess, err := signingSession(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	if err := validateSign(&in, sess); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE id = ?`, formatTime(tx.now), codeID); err != nil {
		return nil, err
	}
	signed, err := s.sign(ctx, tx, c, in, doorledger.VerifyCode)
	if err != nil {
		return nil, err
	}
	return signed, tx.Commit()
}

func (s *ConsentService) OpenAfterSigning(ctx context.Context, token string) (*doorledger.SigningSession, string, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback()
	for _, purpose := range []string{"withdraw", "dispute"} {
		id, err := tx.useToken(ctx, token, purpose, false)
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, "", err
		}
		c, err := findConsent(ctx, tx, id)
		if err != nil {
			return nil, "", err
		}
		if c.Status != doorledger.ConsentSigned {
			return nil, "", notFoundLink
		}
		sess, err := signingSession(ctx, tx, c)
		return sess, purpose, err
	}
	return nil, "", notFoundLink
}

func (s *ConsentService) EndByToken(ctx context.Context, token, reason string) (*doorledger.Consent, error) {
	reason, err := doorledger.NormalizeReason(reason, 1000)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var id int64
	purpose := ""
	for _, p := range []string{"withdraw", "dispute"} {
		if id, err = tx.useToken(ctx, token, p, true); err == nil {
			purpose = p
			break
		} else if doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			return nil, err
		}
	}
	if purpose == "" {
		return nil, notFoundLink
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	status := doorledger.ConsentWithdrawn
	if purpose == "dispute" {
		status = doorledger.ConsentDisputed
	}
	actor := fmt.Sprintf("signer %s <%s>", c.Signer.Name, c.Signer.Email)
	if err := s.endConsent(doorledger.NewSystemContext(ctx, actor), tx, c, status, reason); err != nil {
		return nil, err
	}
	// Both links die with the consent.
	if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, formatTime(tx.now), id); err != nil {
		return nil, err
	}
	ended, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return ended, tx.Commit()
}

// endConsent withdraws, disputes or lapses a signed consent: every device under it
// is disabled first (the database refuses the status change otherwise), the fact
// is recorded, and the building's managers are alerted.
func (s *ConsentService) endConsent(ctx context.Context, tx *Tx, c *doorledger.Consent, status doorledger.ConsentStatus, note string) error {
	cmds, err := tx.disableConsentDevices(ctx, c.ID, fmt.Sprintf("consent #%d %s", c.ID, status))
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = ?, status_at = ?, status_note = ? WHERE id = ? AND status = 'signed'`,
		status, formatTime(tx.now), note, c.ID)
	if err != nil {
		return fmt.Errorf("end consent %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "This consent is no longer signed.")
	}
	if err := tx.consentEvent(ctx, c.ID, string(status), note); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent."+string(status), c.BuildingID, "consent", c.ID, map[string]any{"note": note, "devices_disabled": len(cmds)}); err != nil {
		return err
	}
	what := map[doorledger.ConsentStatus]string{
		doorledger.ConsentWithdrawn: "was WITHDRAWN by the signer",
		doorledger.ConsentDisputed:  "was DISPUTED: the signer says they did not sign it",
		doorledger.ConsentLapsed:    "LAPSED: its period ended without renewal",
	}[status]
	return tx.alertManagers(ctx, c.BuildingID, status == doorledger.ConsentDisputed,
		fmt.Sprintf("Consent #%d %s — %s", c.ID, strings.ToUpper(string(status)), c.BuildingName),
		fmt.Sprintf("Consent #%d for %s %s, serial %s, at %s %s.\nNote: %s\n\n%d device(s) under it are being disabled now.\n%s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, what, orDash(note), len(cmds), s.BaseURL, c.ID), "")
}

func (s *ConsentService) LapseDue(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM consents WHERE status = 'signed' AND expires_at <= ? ORDER BY id`, formatTime(tx.now))
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	sysctx := doorledger.NewSystemContext(ctx, "system")
	for _, id := range ids {
		c, err := findConsent(ctx, tx, id)
		if err != nil {
			return 0, err
		}
		if err := s.endConsent(sysctx, tx, c, doorledger.ConsentLapsed, "period ended "+c.ExpiresAt.Format("2006-01-02")); err != nil {
			return 0, err
		}
	}
	return len(ids), tx.Commit()
}

func (s *ConsentService) RequestRenewal(ctx context.Context, consentID int64) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	c, err := checkConsent(ctx, tx, consentID)
	if err != nil {
		return nil, err
	}
	if err := checkManage(ctx, tx, callerFrom(ctx), c.BuildingID); err != nil {
		return nil, err
	}
	if c.Status != doorledger.ConsentSigned {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Only a signed consent can be renewed.")
	}
	var active int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signers WHERE id = ? AND active = 1`, c.SignerID).Scan(&active); err != nil {
		return nil, err
	} else if active == 0 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "The signer is no longer on the roster; ask the installer for a new request to a current signer.")
	}
	id, err := tx.insertConsent(ctx, c.BuildingID, c.InstallerID, c.SignerID, c.Device, "link", c.ID)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consents SET device_id = ? WHERE id = ?`, nullInt(c.DeviceID), id); err != nil {
		return nil, err
	}
	renewal, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if err := s.mailSigningLink(ctx, tx, renewal); err != nil {
		return nil, err
	}
	return renewal, tx.Commit()
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
