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
	s.active, s.removed_at, c.typed_name_differs`

const consentFrom = ` FROM consents c JOIN buildings b ON b.id = c.building_id JOIN users u ON u.id = c.installer_id JOIN signers s ON s.id = c.signer_id`

func scanConsent(row interface{ Scan(...any) error }) (*doorledger.Consent, error) {
	var c doorledger.Consent
	var mode, requested, statusAt string
	var deviceID, renewalOf, nameDiffers sql.NullInt64
	var terms, termsHash, typed, tz, ip, ua, method sql.NullString
	var png []byte
	var signedAt, expires time.Time
	err := row.Scan(&c.ID, &c.BuildingID, &c.BuildingName, &c.InstallerID, &c.Installer, &c.Company, &c.SignerID,
		&c.Signer.Name, &c.Signer.Title, &c.Signer.Email, &deviceID, &c.Device.Vendor, &c.Device.Model, &c.Device.Serial,
		&c.Device.Location, &c.Device.Opens, &mode, &requested, &c.Status, &statusAt, &c.StatusNote,
		&terms, &termsHash, &typed, &png, nullTime{&signedAt}, &tz, &ip, &ua, &method, nullTime{&expires}, &renewalOf,
		&c.Signer.Active, nullTime{&c.Signer.RemovedAt}, &nameDiffers)
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
			NameDiffers: nameDiffers.Int64 == 1,
		}
		if !nameDiffers.Valid { // signed before the comparison was recorded: compare now
			c.Signature.NameDiffers = !namecheck.Match(typed.String, c.Signer.Name)
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

// findToken resolves any token ever issued for one of the purposes, live or
// not (used, expired): its consent, its purpose, and whether it still works.
func (tx *Tx) findToken(ctx context.Context, token string, purposes ...string) (consentID int64, purpose string, live bool, err error) {
	args := []any{formatTime(tx.now), HashToken(token)}
	for _, p := range purposes {
		args = append(args, p)
	}
	err = tx.QueryRowContext(ctx, `SELECT consent_id, purpose, used_at IS NULL AND expires_at > ? FROM consent_tokens
		WHERE token_hash = ? AND purpose IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(purposes)), ", ")+`)`, args...).Scan(&consentID, &purpose, &live)
	if err == sql.ErrNoRows {
		return 0, "", false, notFoundLink
	}
	return consentID, purpose, live, err
}

func (s *ConsentService) link(path, token string) string { return s.BaseURL + path + token }

// signerRemoved is the answer to anyone who would sign a consent whose signer
// was taken off the roster (ECONFLICT): nobody can sign it.
func signerRemoved(c *doorledger.Consent) error {
	when := ""
	if !c.Signer.RemovedAt.IsZero() {
		when = " on " + c.Signer.RemovedAt.UTC().Format("2006-01-02")
	}
	return doorledger.Errorf(doorledger.ECONFLICT, "%s was removed from the roster of authorized signers of %s%s, so consent #%d can no longer be signed, by link or by code. Nothing was enabled. The building's managers can ask a current signer instead.",
		c.Signer.Name, c.BuildingName, when, c.ID)
}

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
	c, err := checkConsent(ctx, s.db.read, id)
	if err != nil {
		return nil, err
	}
	return forCaller(ctx, c), nil
}

// forCaller returns c as the caller may read it: installers see no contact
// data, IP address, user agent or signature image of the signer.
func forCaller(ctx context.Context, c *doorledger.Consent) *doorledger.Consent {
	if callerFrom(ctx).role() == doorledger.RoleInstaller {
		return c.ForInstaller()
	}
	return c
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
		list = append(list, forCaller(ctx, c))
	}
	return list, rows.Err()
}

func (s *ConsentService) ConsentTimeline(ctx context.Context, id int64) ([]doorledger.ConsentEvent, error) {
	c, err := checkConsent(ctx, s.db.read, id)
	if err != nil {
		return nil, err
	}
	installer := callerFrom(ctx).role() == doorledger.RoleInstaller
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
		if installer { // "signing link to zoe@…": not for installers
			e.Note = doorledger.MaskAddress(e.Note, c.Signer.Email)
		}
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

// signingSession builds what the signing page shows for a consent: the exact
// terms to sign and their hash. The building comes without its roster (the
// page is for whoever holds the link).
func signingSession(ctx context.Context, q querier, c *doorledger.Consent) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	b.Signers = nil
	terms := doorledger.ConsentTerms(c, b)
	return &doorledger.SigningSession{Consent: c, Building: b, Terms: terms, TermsSHA256: doorledger.TermsSHA256(terms)}, nil
}

// doneSession is what a link mailed to the signer shows once its consent is
// past signing: only what the signer saw, its status and dates.
func doneSession(ctx context.Context, q querier, c *doorledger.Consent) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	b.Signers = nil
	return &doorledger.SigningSession{Consent: c.ForSigner(), Building: b, Done: true}, nil
}

func (s *ConsentService) OpenSigning(ctx context.Context, token string) (*doorledger.SigningSession, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	id, _, live, err := tx.findToken(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Status != doorledger.ConsentAwaiting:
		return doneSession(ctx, tx, c)
	case !c.Signer.Active:
		return nil, signerRemoved(c)
	case !live:
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

// validateSign checks the signer's input. A typed name that differs from the
// roster name (namecheck's rule) is refused until the signer confirms it.
func validateSign(in *doorledger.SignInput, sess *doorledger.SigningSession) error {
	v := doorledger.Validation{}
	in.TypedName = strings.TrimSpace(in.TypedName)
	if in.TypedName == "" {
		v.Add("typed_name", "Type your full name.")
	} else if len(in.TypedName) > 200 {
		v.Add("typed_name", "Keep your name under 200 characters.")
	} else if doorledger.ValidateLine(v, "typed_name", in.TypedName); v["typed_name"] != "" {
		// A name with control characters is refused as such before it is
		// compared with the roster.
	} else if roster := sess.Consent.Signer.Name; !in.ConfirmNameDiffers && !namecheck.Match(in.TypedName, roster) {
		v.Add("typed_name", fmt.Sprintf("This is not the name on the roster, “%s”. Correct it, or confirm below that you sign with the name as typed.", roster))
		v.Add("name_confirm", "Tick this to sign with the name as typed: the record will show both names and that they differ.")
	}
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
//
// The signer must be on the roster now: c was read in this transaction, and
// the database refuses the write otherwise (015's consents_sign_needs_roster).
func (s *ConsentService) sign(ctx context.Context, tx *Tx, c *doorledger.Consent, in doorledger.SignInput, method doorledger.VerificationMethod) (*doorledger.Consent, error) {
	if !c.Signer.Active {
		return nil, signerRemoved(c)
	}
	sess, err := signingSession(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	if err := validateSign(&in, sess); err != nil {
		return nil, err
	}
	differs := !namecheck.Match(in.TypedName, c.Signer.Name)
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
		signature_png = ?, signed_at = ?, signed_tz = ?, signed_ip = ?, signed_ua = ?, method = ?, expires_at = ?, typed_name_differs = ?
		WHERE id = ? AND status = 'awaiting_signature'`,
		formatTime(tx.now), sess.Terms, hash, in.TypedName, in.SignaturePNG, formatTime(tx.now), b.Timezone, in.IP, in.UserAgent,
		method, formatTime(expires), differs, c.ID)
	if err != nil {
		return nil, fmt.Errorf("sign consent %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFoundLink
	}
	nameNote := fmt.Sprintf("typed name “%s”", in.TypedName)
	if differs {
		nameNote += fmt.Sprintf(", which differs from the roster name “%s” (the signer confirmed it)", c.Signer.Name)
	}
	if err := tx.consentEvent(ctx, c.ID, "signed", fmt.Sprintf("%s; the roster address was verified by %s", nameNote, methodWords(method))); err != nil {
		return nil, err
	}
	signer := fmt.Sprintf("signer %s <%s>", c.Signer.Name, c.Signer.Email)
	if err := tx.auditAs(ctx, 0, signer, "consent.sign", c.BuildingID, "consent", c.ID,
		map[string]any{"terms_sha256": hash, "method": method, "typed_name": in.TypedName, "typed_name_differs": differs, "signer": c.SignerID}); err != nil {
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
	links, err := s.issueEndLinks(ctx, tx, c.ID, expires)
	if err != nil {
		return nil, err
	}
	loc := b.Location()
	typedNote := ""
	if differs {
		typedNote = fmt.Sprintf("You signed with the name “%s”, which differs from the name on the roster, “%s”;\nthe record shows both.\n", in.TypedName, c.Signer.Name)
	}
	body := fmt.Sprintf(`Dear %s,

You signed consent #%d for %s: %s %s (serial %s) at %s.
Signed: %s (%s). Your registered address, %s, was verified by %s.
%sTerms SHA-256: %s
It lasts until %s unless renewed.

%s
Keep this mail as your copy.
— Doorledger, for the managers of %s
`, c.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
		tx.now.Format("2006-01-02 15:04 MST"), tx.now.In(loc).Format("2006-01-02 15:04 MST"), c.Signer.Email, methodWords(method), typedNote, hash,
		expires.In(loc).Format("2006-01-02"), links, b.Name)
	if err := tx.queueMail(ctx, &doorledger.Message{To: c.Signer.Email, Subject: "You signed consent #" + itoa(c.ID) + " for " + b.Name,
		Body: body, Kind: "signed", BuildingID: b.ID}, ""); err != nil {
		return nil, err
	}
	typedNote = ""
	if differs {
		typedNote = fmt.Sprintf("\nThe typed name, “%s”, DIFFERS from the roster name; the signer confirmed signing with it.\n", in.TypedName)
	}
	if err := tx.alertManagers(ctx, b.ID, false, fmt.Sprintf("Consent #%d signed at %s", c.ID, b.Name),
		fmt.Sprintf("%s (%s) signed consent #%d for %s %s, serial %s, at %s; their roster address was verified by %s. The device is being enabled.\n%s\n%s/consents/%d\n",
			c.Signer.Name, c.Signer.Title, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, methodWords(method), typedNote, s.BaseURL, c.ID), ""); err != nil {
		return nil, err
	}
	return findConsent(ctx, tx, c.ID)
}

// methodWords says how the signer's roster address was verified.
func methodWords(m doorledger.VerificationMethod) string {
	if m == doorledger.VerifyCode {
		return "a 6-digit code mailed to it (in person)"
	}
	return "a one-time link mailed to it"
}

// issueEndLinks issues a withdraw and an "I did not sign this" link for a
// signed consent (working until 30 days past its lapse) and returns the text
// of a mail that offers them.
func (s *ConsentService) issueEndLinks(ctx context.Context, tx *Tx, consentID int64, expires time.Time) (string, error) {
	withdraw, err := tx.issueToken(ctx, consentID, "withdraw", expires.Sub(tx.now)+30*24*time.Hour)
	if err != nil {
		return "", err
	}
	dispute, err := tx.issueToken(ctx, consentID, "dispute", expires.Sub(tx.now)+30*24*time.Hour)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`To withdraw this consent (every device under it is disabled at once):
  %s

If you did NOT sign this, report it (the device is disabled and the managers alerted):
  %s
`, s.link("/consent/withdraw/", withdraw), s.link("/consent/dispute/", dispute)), nil
}

func (s *ConsentService) Sign(ctx context.Context, token string, in doorledger.SignInput) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	id, _, _, err := tx.findToken(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if c.Status == doorledger.ConsentAwaiting && !c.Signer.Active {
		return nil, signerRemoved(c) // said before "link not valid": the signer's links were withdrawn with them
	}
	if _, err := tx.useToken(ctx, token, "sign", true); err != nil {
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
	if !c.Signer.Active {
		return nil, signerRemoved(c)
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
	sess, err := signingSession(ctx, s.db.read, c)
	if err != nil {
		return nil, err
	}
	// The installer's screen: the signer's address is masked in the terms
	// shown; the form posts back the hash of the terms signed, with it.
	sess.Consent, sess.Terms = c.ForInstaller(), doorledger.MaskAddress(sess.Terms, c.Signer.Email)
	return sess, nil
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
	id, purpose, live, err := tx.findToken(ctx, token, "withdraw", "dispute")
	if err != nil {
		return nil, "", err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, "", err
	}
	sess, err := doneSession(ctx, tx, c)
	if err != nil {
		return nil, "", err
	}
	// The link works while the consent is signed; after that (or once used) it
	// says what happened. Either way, only what the signer already saw.
	sess.Done = !live || c.Status != doorledger.ConsentSigned
	return sess, purpose, nil
}

func (s *ConsentService) MailEndLinks(ctx context.Context, token string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	id, _, _, err := tx.findToken(ctx, token, "sign", "withdraw", "dispute")
	if err != nil {
		return err
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return err
	}
	if c.Status != doorledger.ConsentSigned {
		return doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d is %s: there is nothing left to withdraw or report.", c.ID, strings.ToLower(statusWords(c.Status)))
	}
	var recent int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_events WHERE consent_id = ? AND kind = 'links_mailed' AND at > ?`,
		c.ID, formatTime(tx.now.Add(-24*time.Hour))).Scan(&recent); err != nil {
		return err
	}
	if recent >= doorledger.EndLinkMailsPerDay {
		return doorledger.Errorf(doorledger.ETOOMANY, "The links were mailed %d times in the last day. Look for those mails at your registered address, or try again tomorrow.", recent)
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, c.ExpiresAt)
	if err != nil {
		return err
	}
	body := fmt.Sprintf(`Dear %s,

Someone holding a link mailed to you for consent #%d (%s %s, serial %s, at %s, %s)
asked for these links again. The earlier links still work.

%s
If you did not ask for this mail, nothing has changed: the links only work from
this mailbox.
— Doorledger, for the managers of %s
`, c.Signer.Name, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.BuildingName, links, c.BuildingName)
	if err := tx.queueMail(ctx, &doorledger.Message{To: c.Signer.Email, Subject: "Links to withdraw or report consent #" + itoa(c.ID) + " for " + c.BuildingName,
		Body: body, Kind: "signed", BuildingID: c.BuildingID}, ""); err != nil { // the same links as the confirmation
		return err
	}
	if err := tx.consentEvent(ctx, c.ID, "links_mailed", "withdraw and “I did not sign this” links mailed again to "+c.Signer.Email); err != nil {
		return err
	}
	if err := tx.auditAs(ctx, 0, fmt.Sprintf("signer %s <%s>", c.Signer.Name, c.Signer.Email), "consent.links_mailed", c.BuildingID, "consent", c.ID, nil); err != nil {
		return err
	}
	return tx.Commit()
}

// statusWords is how a consent status reads in a message.
func statusWords(s doorledger.ConsentStatus) string {
	return strings.ReplaceAll(string(s), "_", " ")
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

func (s *ConsentService) RequestRenewal(ctx context.Context, consentID, signerID int64) (*doorledger.Consent, error) {
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
	if c.Status != doorledger.ConsentSigned && !c.Stranded() {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Only a signed consent can be renewed, or a request whose signer left the roster asked of a current signer.")
	}
	if signerID == 0 {
		signerID = c.SignerID
	}
	var name, title string
	err = tx.QueryRowContext(ctx, `SELECT name, title FROM signers WHERE id = ? AND building_id = ? AND active = 1`, signerID, c.BuildingID).Scan(&name, &title)
	if err == sql.ErrNoRows {
		msg := "Choose a signer on this building's roster."
		if signerID == c.SignerID {
			msg = c.Signer.Name + " is no longer on the roster: choose a current signer."
		}
		return nil, &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields.", Fields: map[string]string{"signer_id": msg}}
	} else if err != nil {
		return nil, err
	}
	id, err := tx.insertConsent(ctx, c.BuildingID, c.InstallerID, signerID, c.Device, "link", c.ID)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consents SET device_id = ? WHERE id = ?`, nullInt(c.DeviceID), id); err != nil {
		return nil, err
	}
	if err := tx.consentEvent(ctx, c.ID, "renewal_requested", fmt.Sprintf("consent #%d asks %s, %s", id, name, title)); err != nil {
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

// withdrawSignerRequests follows a signer's removal from the roster, in the
// same transaction: every request awaiting their signature can no longer be
// signed, so its signing links and codes stop working (a fact on its
// timeline), and its installer is told; the building's managers are told
// which requests were withdrawn and which signed consents now rest on a
// signer no longer on the roster (they stay valid: the signer was authorized
// when they signed). It returns the ids of both.
func (tx *Tx) withdrawSignerRequests(ctx context.Context, baseURL string, buildingID, signerID int64) (withdrawn, signed []int64, err error) {
	list, err := queryAll(ctx, tx, scanConsent, `SELECT `+consentColumns+consentFrom+`
		WHERE c.signer_id = ? AND c.building_id = ? AND c.status IN ('awaiting_signature', 'signed') ORDER BY c.id`, signerID, buildingID)
	if err != nil || len(list) == 0 {
		return nil, nil, err
	}
	at := formatTime(tx.now)
	var pending, active strings.Builder
	byInstaller := map[int64][]*doorledger.Consent{}
	var installers []int64
	line := func(b *strings.Builder, c *doorledger.Consent) {
		fmt.Fprintf(b, "  consent #%d: %s %s, serial %s, at %s (installer %s, %s)\n    %s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Installer, orNone(c.Company), baseURL, c.ID)
	}
	for _, c := range list {
		if c.Status == doorledger.ConsentSigned {
			signed = append(signed, c.ID)
			line(&active, c)
			continue
		}
		withdrawn = append(withdrawn, c.ID)
		line(&pending, c)
		if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND purpose = 'sign' AND used_at IS NULL`, at, c.ID); err != nil {
			return nil, nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, at, c.ID); err != nil {
			return nil, nil, err
		}
		if err := tx.consentEvent(ctx, c.ID, "links_withdrawn",
			fmt.Sprintf("%s was removed from the roster by %s: the signing link and codes no longer work", c.Signer.Name, callerFrom(ctx).label())); err != nil {
			return nil, nil, err
		}
		if byInstaller[c.InstallerID] == nil {
			installers = append(installers, c.InstallerID)
		}
		byInstaller[c.InstallerID] = append(byInstaller[c.InstallerID], c)
	}
	first := list[0]
	for _, id := range installers {
		var email string
		if err := tx.QueryRowContext(ctx, `SELECT email FROM users WHERE id = ? AND disabled = 0`, id).Scan(&email); err == sql.ErrNoRows {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		var b strings.Builder
		for _, c := range byInstaller[id] {
			line(&b, c)
		}
		// The signer's name only: installers get no contact data of signers.
		if err := tx.queueMail(ctx, &doorledger.Message{To: email, Subject: fmt.Sprintf("Consent requests at %s can no longer be signed", first.BuildingName),
			Body: fmt.Sprintf(`%s was removed from the roster of authorized signers of %s, so these
requests of yours can no longer be signed: their signing links and codes no
longer work, and nothing was enabled.

%s
The building's managers have been told; they can ask a current signer instead.

— Doorledger, for the managers of %s
`, first.Signer.Name, first.BuildingName, b.String(), first.BuildingName), Kind: "alert", BuildingID: buildingID}, ""); err != nil {
			return nil, nil, err
		}
	}
	var body strings.Builder
	fmt.Fprintf(&body, "%s (%s) was removed from the roster of authorized signers of %s by %s.\n", first.Signer.Name, first.Signer.Title, first.BuildingName, callerFrom(ctx).label())
	if pending.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests awaiting their signature can no longer be signed (their links and codes no\nlonger work; the installers were told). Ask a current signer on each consent's page:\n%s", pending.String())
	}
	if active.Len() > 0 {
		fmt.Fprintf(&body, "\nConsents they signed stay valid (they were authorized when they signed) and are\nflagged on the building page and in reports. Ask a current signer to renew them on\neach consent's page:\n%s", active.String())
	}
	return withdrawn, signed, tx.alertManagers(ctx, buildingID, false,
		fmt.Sprintf("Signer removed at %s: %d request(s) withdrawn, %d signed consent(s) to renew", first.BuildingName, len(withdrawn), len(signed)), body.String(), "")
}
