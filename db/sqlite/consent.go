package sqlite

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

// issueToken stores a new one-time token of a named signer of the consent
// and returns it.
func (tx *Tx) issueToken(ctx context.Context, consentID, signerID int64, purpose string, ttl time.Duration) (string, error) {
	token, hash := newToken()
	_, err := tx.ExecContext(ctx, `INSERT INTO consent_tokens (consent_id, signer_id, purpose, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		consentID, nullInt(signerID), purpose, hash, formatTime(tx.now), formatTime(tx.now.Add(ttl)))
	return token, err
}

// linkToken is a one-time token as found: its consent, the named signer it
// is for, its purpose, and whether it still works.
type linkToken struct {
	id, consentID, signerID int64
	purpose                 string
	live                    bool
}

// useToken resolves a live token of purpose; with consume it is marked used.
func (tx *Tx) useToken(ctx context.Context, token, purpose string, consume bool) (linkToken, error) {
	t, err := tx.findToken(ctx, token, purpose)
	if err != nil {
		return t, err
	} else if !t.live {
		return t, notFoundLink
	}
	if consume {
		if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE id = ?`, formatTime(tx.now), t.id); err != nil {
			return t, err
		}
	}
	return t, nil
}

// findToken resolves any token ever issued for one of the purposes, live or
// not (used, expired). A token issued before tokens named their signer is
// the consent's signer's.
func (tx *Tx) findToken(ctx context.Context, token string, purposes ...string) (linkToken, error) {
	args := []any{formatTime(tx.now), HashToken(token)}
	for _, p := range purposes {
		args = append(args, p)
	}
	var t linkToken
	err := tx.QueryRowContext(ctx, `SELECT t.id, t.consent_id, COALESCE(t.signer_id, c.signer_id), t.purpose, t.used_at IS NULL AND t.expires_at > ?
		FROM consent_tokens t JOIN consents c ON c.id = t.consent_id
		WHERE t.token_hash = ? AND t.purpose IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(purposes)), ", ")+`)`, args...).Scan(&t.id, &t.consentID, &t.signerID, &t.purpose, &t.live)
	if err == sql.ErrNoRows {
		return t, notFoundLink
	}
	return t, err
}

// signingTTL is how long a signing link issued now for c works: until the
// request expires (once, as every link), or SigningLinkTTL for a request
// made before requests expired.
func (tx *Tx) signingTTL(c *doorledger.Consent) time.Duration {
	if c.RequestExpiresAt.IsZero() {
		return doorledger.SigningLinkTTL
	}
	return c.RequestExpiresAt.Sub(tx.now)
}

func (s *ConsentService) link(path, token string) string { return s.BaseURL + path + token }

// signerRemoved is the answer to a signer taken off the roster who would sign
// (ECONFLICT): they cannot sign it, and the request says who still can.
func signerRemoved(c *doorledger.Consent, sg doorledger.Signer) error {
	when := ""
	if !sg.RemovedAt.IsZero() {
		when = " on " + sg.RemovedAt.UTC().Format("2006-01-02")
	}
	if len(c.Signers) > 1 && c.Need.Satisfiable {
		return doorledger.Errorf(doorledger.ECONFLICT, "%s was removed from the roster of authorized signers of %s%s, so they can no longer sign consent #%d, by link or by code. The request still needs %s from its other signers.",
			sg.Name, c.BuildingName, when, c.ID, c.Need.Describe())
	}
	return doorledger.Errorf(doorledger.ECONFLICT, "%s was removed from the roster of authorized signers of %s%s, so consent #%d can no longer be signed, by link or by code. Nothing was enabled. The building's managers can ask a current signer instead.",
		sg.Name, c.BuildingName, when, c.ID)
}

// signerOf returns the named signer with the roster id (the request's one
// signer when id is 0 or the request predates named signers).
func signerOf(c *doorledger.Consent, id int64) *doorledger.RequestSigner {
	if id == 0 {
		id = c.SignerID
	}
	if rs := c.RequestSigner(id); rs != nil {
		return rs
	}
	return &doorledger.RequestSigner{Signer: c.Signer, Position: 1, State: doorledger.SignerToSign}
}

// waitingErr answers a signer who would sign before their turn (ECONFLICT).
func waitingErr(c *doorledger.Consent, waiting []doorledger.Signer) error {
	return doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d is signed in order: it is waiting for %s to sign first. You will be mailed when it is your turn.", c.ID, waitingWords(waiting))
}

// waitingWords names the signers a turn waits for: "the President (Paula Prez)".
func waitingWords(list []doorledger.Signer) string {
	words := make([]string, len(list))
	for i, s := range list {
		words[i] = "the " + s.Title + " (" + s.Name + ")"
	}
	return doorledger.JoinAnd(words)
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
	policy, named, err := tx.namedSigners(ctx, buildingID, r.Named())
	if err != nil {
		for k, m := range doorledger.ErrorFields(err) {
			v.Add(k, m)
		}
		if doorledger.ErrorCode(err) != doorledger.EINVALID {
			return nil, err
		}
	}
	var claimed []*doorledger.Signer
	if r.Paper != nil {
		claimed = checkPaper(r.Paper, tx.now, v, named, nil, policy)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	mode := "link"
	if r.InPerson {
		mode = "in_person"
	}
	id, err := tx.insertRequest(ctx, buildingID, cl.id(), policy, named, r.Device, mode, 0, 0)
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
	if r.Paper != nil {
		req, err := findConsent(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		if err := tx.attachPaper(ctx, req, *r.Paper, claimed); err != nil {
			return nil, err
		}
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if !r.InPerson {
		if err := s.mailSigningLinks(ctx, tx, c); err != nil {
			return nil, err
		}
	}
	return c, tx.Commit()
}

// namedSigners checks the signers a request names against the building's
// policy in force (recording it if it is the default) and the roster: each
// on the roster now, each once, different people, enough of them, the
// required roles among them. With none named, the portal proposes them.
func (tx *Tx) namedSigners(ctx context.Context, buildingID int64, ids []int64) (*doorledger.ConsentPolicy, []*doorledger.Signer, error) {
	policy, err := tx.policyForRequest(ctx, buildingID)
	if err != nil {
		return nil, nil, err
	}
	b, err := findBuilding(ctx, tx, buildingID)
	if err != nil {
		return nil, nil, err
	}
	if len(ids) == 0 {
		if policy.Required == 1 && len(policy.Roles) == 0 {
			return policy, nil, signerFieldErr("Choose who is asked to sign.")
		}
		named := doorledger.ProposeSigners(policy, b.Signers)
		if named == nil {
			msg, _ := policy.Unsatisfiable(b.Signers)
			return policy, nil, signerFieldErr("The roster cannot satisfy this building's consent policy: " + msg)
		}
		return policy, named, nil
	}
	var named []*doorledger.Signer
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			return policy, nil, signerFieldErr("Name each signer once.")
		}
		seen[id] = true
		var found *doorledger.Signer
		for _, sg := range b.Signers {
			if sg.ID == id {
				found = sg
			}
		}
		if found == nil {
			return policy, nil, signerFieldErr("Choose a signer from this building's roster.")
		}
		named = append(named, found)
	}
	return policy, named, doorledger.CheckNamedSigners(policy, named)
}

func signerFieldErr(msg string) error {
	return &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields.", Fields: map[string]string{"signer_id": msg}}
}

// insertRequest writes a consent request under policy naming the signers, in
// order, with its terms (version 2, fixed now), its expiry, its "requested"
// fact and its audit entry.
func (tx *Tx) insertRequest(ctx context.Context, buildingID, installerID int64, policy *doorledger.ConsentPolicy, named []*doorledger.Signer,
	d doorledger.DeviceDetails, mode string, renewalOf, resendOf int64) (int64, error) {
	b, err := findBuilding(ctx, tx, buildingID)
	if err != nil {
		return 0, err
	}
	expires := tx.now.Add(policy.Expiry())
	res, err := tx.ExecContext(ctx, `
		INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status_at, renewal_of,
			policy_id, term_months, request_expires_at, resend_of)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		buildingID, installerID, named[0].ID, d.Vendor, d.Model, d.Serial, d.Location, d.Opens, mode, formatTime(tx.now), formatTime(tx.now), nullInt(renewalOf),
		policy.ID, b.ConsentMonths, formatTime(expires), nullInt(resendOf))
	if err != nil {
		return 0, fmt.Errorf("insert consent: %w", err)
	}
	id, _ := res.LastInsertId()
	var names []string
	var ids []int64
	for i, sg := range named {
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent_signers (consent_id, signer_id, position, address_key) VALUES (?, ?, ?, ?)`,
			id, sg.ID, i+1, doorledger.AddressKey(sg.Email)); isUniqueViolation(err) {
			return 0, signerFieldErr("Two of the signers named share one registered address: one person cannot sign twice.")
		} else if err != nil {
			return 0, fmt.Errorf("name signer: %w", err)
		}
		names = append(names, sg.Name+" ("+sg.Title+")")
		ids = append(ids, sg.ID)
	}
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	terms := doorledger.ConsentTermsV2(c, b, b.ConsentMonths)
	if _, err := tx.ExecContext(ctx, `UPDATE consents SET terms = ?, terms_sha256 = ? WHERE id = ?`, terms, doorledger.TermsSHA256(terms), id); err != nil {
		return 0, err
	}
	note := "under the policy: " + policy.Describe() + "; asked of " + doorledger.JoinAnd(names)
	if err := tx.consentEvent(ctx, id, "requested", note); err != nil {
		return 0, err
	}
	return id, tx.audit(ctx, "consent.request", buildingID, "consent", id, map[string]any{"signers": ids, "policy": policy.ID, "mode": mode,
		"serial": d.Serial, "renewal_of": renewalOf, "resend_of": resendOf, "expires": formatTime(expires)})
}

// mailSigningLinks mails each named signer who has not signed their own
// one-time signing link, at their registered address. Under ordered signing
// every signer is mailed at once, those after the first told that the link
// waits for the earlier signers and that they will be mailed when it is
// their turn: they learn of the request early (and can decline it), and the
// turn notice makes the later mail the one to act on.
func (s *ConsentService) mailSigningLinks(ctx context.Context, tx *Tx, c *doorledger.Consent) error {
	for _, rs := range c.Signers {
		if rs.State != doorledger.SignerToSign && rs.State != doorledger.SignerWaiting {
			continue
		}
		if err := s.mailSigningLink(ctx, tx, c, rs, "request"); err != nil {
			return err
		}
	}
	return nil
}

// mailSigningLink issues a named signer's one-time signing link and mails it
// to their registered address: at the request ("request"), when their turn
// comes ("turn"), or as a reminder ("reminder").
func (s *ConsentService) mailSigningLink(ctx context.Context, tx *Tx, c *doorledger.Consent, rs doorledger.RequestSigner, why string) error {
	token, err := tx.issueToken(ctx, c.ID, rs.Signer.ID, "sign", tx.signingTTL(c))
	if err != nil {
		return err
	}
	until := "for 7 days"
	if !c.RequestExpiresAt.IsZero() {
		until = "until " + c.RequestExpiresAt.In(buildingLoc(ctx, tx, c.BuildingID)).Format("2006-01-02 15:04 MST") + ", when the request expires"
	}
	who := ""
	if len(c.Signers) > 1 {
		var others []string
		for _, o := range c.Signers {
			if o.Signer.ID != rs.Signer.ID {
				others = append(others, o.Signer.Name+" ("+o.Signer.Title+")")
			}
		}
		who = fmt.Sprintf("\nThis building requires %s. Also asked: %s.\n", c.Policy.Describe(), doorledger.JoinAnd(others))
	}
	order := ""
	if waiting := c.WaitingFor(rs.Signer.ID); len(waiting) > 0 {
		order = fmt.Sprintf("\nThey sign in order: the link shows the terms now, and takes your signature once\n%s has signed. You will be mailed when it is your turn.\n", waitingWords(waiting))
	}
	subject, opening := "Consent requested: delivery device at "+c.BuildingName, ""
	switch why {
	case "turn":
		subject, opening = "Your turn to sign: delivery device at "+c.BuildingName, "It is your turn to sign: the signers before you have signed.\n\n"
	case "reminder":
		subject, opening = "Reminder: consent requested for a delivery device at "+c.BuildingName, "A reminder: your signature is still needed.\n\n"
	case "paper":
		subject, opening = "Did you sign this form? Delivery device at "+c.BuildingName, "A paper form was attached to this request on your behalf.\n\n"
	}
	if c.Paper != nil && c.Paper.Asks(rs.Signer.ID) != nil {
		order += fmt.Sprintf("\n%s says you signed a paper form for this device (dated %s). Your signing page\nshows it and asks: did you sign this form? If you did not, answer so there:\nthe request is then refused and the managers and the board are alerted.\n",
			c.Paper.AttachedBy, c.Paper.DateWritten)
	}
	body := fmt.Sprintf(`Dear %s,

%s%s of %s asks for your consent, as an authorized signer for %s, to enable a
delivery-access device: %s %s (serial %s), installed at %s. It opens: %s.
%s%s
Review the full terms and sign or decline here (the link works once, %s):

  %s

If you did not expect this request, decline it or ignore this mail: nothing is
enabled without your signature.

— Doorledger, for the managers of %s
`, rs.Signer.Name, opening, c.Installer, orNone(c.Company), c.BuildingName, c.Device.Vendor, c.Device.Model, c.Device.Serial,
		c.Device.Location, c.Device.Opens, who, order, until, s.link("/sign/", token), c.BuildingName)
	kind := "signing_link"
	if why == "reminder" {
		kind = "reminder"
	}
	if err := tx.queueMail(ctx, &doorledger.Message{To: rs.Signer.Email, Subject: subject, Body: body, Kind: kind, BuildingID: c.BuildingID}, ""); err != nil {
		return err
	}
	event, note := "mailed", "signing link to "+rs.Signer.Email
	switch why {
	case "turn":
		event, note = "turn_mailed", "their turn: signing link to "+rs.Signer.Name+" at "+rs.Signer.Email
	case "reminder":
		event, note = "reminded", "reminder with a new signing link to "+rs.Signer.Name+" at "+rs.Signer.Email
	}
	return tx.consentEvent(ctx, c.ID, event, note)
}

// buildingLoc is the building's time zone (UTC if it cannot be read).
func buildingLoc(ctx context.Context, q querier, buildingID int64) *time.Location {
	b, err := findBuilding(ctx, q, buildingID)
	if err != nil {
		return time.UTC
	}
	return b.Location()
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
	list, err := queryConsents(ctx, s.db.read, query, args...)
	if err != nil {
		return nil, err
	}
	for i, c := range list {
		list[i] = forCaller(ctx, c)
	}
	return list, nil
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
			e.Note = c.MaskAddresses(e.Note)
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

// signingSession builds what the signing page shows for a named signer of a
// consent: the exact terms to sign and their hash, who else signs and who
// has, and, under ordered signing, whom it waits for. The terms of a policy
// request were fixed when it was made; an older request's are built now
// (version 1), as they always were. The building comes without its roster
// (the page is for whoever holds the link).
func signingSession(ctx context.Context, q querier, c *doorledger.Consent, me *doorledger.RequestSigner) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	b.Signers = nil
	terms := c.Terms
	if c.TermsSHA256 == "" {
		terms = doorledger.ConsentTerms(c, b)
	}
	return &doorledger.SigningSession{Consent: c, Building: b, Terms: terms, TermsSHA256: doorledger.TermsSHA256(terms),
		Me: me, WaitingFor: c.WaitingFor(me.Signer.ID)}, nil
}

// doneSession is what a link mailed to the signer shows once its consent is
// past signing, or once this signer signed a request that awaits others:
// only what the signer saw, its status and dates.
func doneSession(ctx context.Context, q querier, c *doorledger.Consent, me *doorledger.RequestSigner) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	b.Signers = nil
	seen := c.ForSigner()
	sess := &doorledger.SigningSession{Consent: seen, Building: b, Done: true}
	if me != nil {
		sess.Me = seen.RequestSigner(me.Signer.ID)
		sess.SignedByMe = me.Signature != nil && c.Status == doorledger.ConsentAwaiting
	}
	return sess, nil
}

func (s *ConsentService) OpenSigning(ctx context.Context, token string) (*doorledger.SigningSession, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, err := tx.findToken(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, t.consentID)
	if err != nil {
		return nil, err
	}
	me := signerOf(c, t.signerID)
	switch {
	case c.Status != doorledger.ConsentAwaiting || me.Signature != nil:
		return doneSession(ctx, tx, c, me)
	case !me.Signer.Active:
		return nil, signerRemoved(c, me.Signer)
	case !t.live:
		return nil, notFoundLink
	}
	var opened int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_events WHERE consent_id = ? AND kind = 'opened' AND note = ?`, c.ID, openedNote(c, me)).Scan(&opened); err != nil {
		return nil, err
	}
	if opened == 0 {
		if err := tx.consentEvent(ctx, c.ID, "opened", openedNote(c, me)); err != nil {
			return nil, err
		}
	}
	sess, err := signingSession(ctx, tx, c, me)
	if err != nil {
		return nil, err
	}
	return sess, tx.Commit()
}

// openedNote names who opened a link of a request with several signers.
func openedNote(c *doorledger.Consent, me *doorledger.RequestSigner) string {
	if len(c.Signers) <= 1 {
		return ""
	}
	return "by " + me.Signer.Name
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
	} else if roster := sess.Me.Signer.Name; !in.ConfirmNameDiffers && !namecheck.Match(in.TypedName, roster) {
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

// sign records one named signer's signature evidence. When the signatures
// then satisfy the request's policy, the consent is signed and its device
// enabled (complete); otherwise the signer is told who else must sign, and,
// under ordered signing, the next signer is mailed that it is their turn.
// Either way the signer is mailed a confirmation with their own withdraw and
// "I did not sign this" links.
//
// The signer must be on the roster now, named by the request, and it must be
// their turn: c was read in this transaction, and the database refuses the
// signature otherwise (030's consent_signatures_valid).
func (s *ConsentService) sign(ctx context.Context, tx *Tx, c *doorledger.Consent, me *doorledger.RequestSigner, in doorledger.SignInput, method doorledger.VerificationMethod) (*doorledger.Consent, error) {
	if !me.Signer.Active {
		return nil, signerRemoved(c, me.Signer)
	}
	if me.Signature != nil {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "%s signed consent #%d already: one person signs once.", me.Signer.Name, c.ID)
	}
	if waiting := c.WaitingFor(me.Signer.ID); len(waiting) > 0 {
		return nil, waitingErr(c, waiting)
	}
	sess, err := signingSession(ctx, tx, c, me)
	if err != nil {
		return nil, err
	}
	pv := doorledger.Validation{}
	if err := checkPaperConfirm(c, me, in, pv); err != nil {
		return nil, err
	}
	if err := validateSign(&in, sess); err != nil || len(pv) > 0 {
		for k, m := range doorledger.ErrorFields(err) {
			pv.Add(k, m)
		}
		return nil, pv.Err()
	}
	differs := !namecheck.Match(in.TypedName, me.Signer.Name)
	hash := sess.TermsSHA256
	if subtle.ConstantTimeCompare([]byte(in.TermsSHA256), []byte(hash)) != 1 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "The terms changed since the page was opened. Please read them again before signing.")
	}
	b := sess.Building
	if len(in.UserAgent) > 500 {
		in.UserAgent = in.UserAgent[:500]
	}
	if c.TermsSHA256 == "" { // a request made before policies: its terms are stored as signed
		if _, err := tx.ExecContext(ctx, `UPDATE consents SET terms = ?, terms_sha256 = ? WHERE id = ? AND signed_at IS NULL`, sess.Terms, hash, c.ID); err != nil {
			return nil, err
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, typed_name_differs,
			signature_png, signed_at, signed_tz, signed_ip, signed_ua, method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, me.Signer.ID, me.Signer.Email, doorledger.AddressKey(me.Signer.Email), hash, in.TypedName, differs, in.SignaturePNG,
		formatTime(tx.now), b.Timezone, in.IP, in.UserAgent, method)
	if isUniqueViolation(err) || isRefusal(err, "one person cannot sign a request twice") {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d has a signature from this person already (the same roster entry or the same registered address): one person signs once.", c.ID)
	} else if err != nil {
		return nil, fmt.Errorf("sign consent %d: %w", c.ID, err)
	}
	signatureID, _ := res.LastInsertId()
	nameNote := fmt.Sprintf("typed name “%s”", in.TypedName)
	if differs {
		nameNote += fmt.Sprintf(", which differs from the roster name “%s” (the signer confirmed it)", me.Signer.Name)
	}
	if len(c.Signers) > 1 {
		nameNote = fmt.Sprintf("%s (%s) signed: %s", me.Signer.Name, me.Signer.Title, nameNote)
	}
	signer := fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email)
	if err := tx.auditAs(ctx, 0, signer, "consent.sign", c.BuildingID, "consent", c.ID,
		map[string]any{"terms_sha256": hash, "method": method, "typed_name": in.TypedName, "typed_name_differs": differs, "signer": me.Signer.ID}); err != nil {
		return nil, err
	}
	if err := tx.confirmPaper(ctx, c, me, signatureID, signer); err != nil {
		return nil, err
	}
	after, err := findConsent(ctx, tx, c.ID)
	if err != nil {
		return nil, err
	}
	if !after.Need.Satisfied {
		if err := tx.consentEvent(ctx, c.ID, "signature", fmt.Sprintf("%s; the roster address was verified by %s. Still needed: %s", nameNote, methodWords(method), after.Need.Describe())); err != nil {
			return nil, err
		}
		if err := s.mailSignatureRecorded(ctx, tx, after, signerOf(after, me.Signer.ID), b, method, differs, in.TypedName); err != nil {
			return nil, err
		}
		if err := s.mailTurns(ctx, tx, after); err != nil {
			return nil, err
		}
		return after, nil
	}
	if err := tx.consentEvent(ctx, c.ID, "signed", fmt.Sprintf("%s; the roster address was verified by %s", nameNote, methodWords(method))); err != nil {
		return nil, err
	}
	return s.complete(ctx, tx, after, signerOf(after, me.Signer.ID), b, method)
}

// complete marks a request whose signatures satisfy its policy signed (the
// row holds the last signature, the one that satisfied it; every signature
// is in consent_signatures), enables its device, withdraws the links and
// codes of the signers no longer needed, and mails the last signer their
// confirmation, the earlier ones that the consent is in force, and the
// managers.
func (s *ConsentService) complete(ctx context.Context, tx *Tx, c *doorledger.Consent, last *doorledger.RequestSigner, b *doorledger.Building, method doorledger.VerificationMethod) (*doorledger.Consent, error) {
	sig := last.Signature
	months := b.ConsentMonths
	if c.Policy.ID != 0 {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(term_months, ?) FROM consents WHERE id = ?`, months, c.ID).Scan(&months); err != nil {
			return nil, err
		}
	}
	expires := tx.now.AddDate(0, months, 0)
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'signed', status_at = ?, signer_id = ?, typed_name = ?,
		signature_png = ?, signed_at = ?, signed_tz = ?, signed_ip = ?, signed_ua = ?, method = ?, expires_at = ?, typed_name_differs = ?
		WHERE id = ? AND status = 'awaiting_signature' AND expired_at IS NULL`,
		formatTime(tx.now), last.Signer.ID, sig.TypedName, sig.SignaturePNG, formatTime(tx.now), sig.Timezone, sig.IP, sig.UserAgent,
		method, formatTime(expires), sig.NameDiffers, c.ID)
	if err != nil {
		return nil, fmt.Errorf("sign consent %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFoundLink
	}
	// The signers not needed any more: their links and codes stop working.
	at := formatTime(tx.now)
	if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND purpose = 'sign' AND used_at IS NULL`, at, c.ID); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, at, c.ID); err != nil {
		return nil, err
	}
	signer := fmt.Sprintf("signer %s <%s>", last.Signer.Name, last.Signer.Email)
	// The device now rests on this consent (a renewal moves it here) and is enabled.
	if c.DeviceID != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET consent_id = ?, unconsented = 0 WHERE id = ? AND retired = 0`, c.ID, c.DeviceID); err != nil {
			return nil, err
		}
		sysctx := doorledger.NewSystemContext(ctx, signer)
		// Under the privacy profile a device without a complete vendor
		// disclosure record stays disabled: the consent is signed, and the
		// managers are told what is missing (db/sqlite/privacy.go).
		if hold, err := tx.privacyHold(ctx, c.DeviceID); err != nil {
			return nil, err
		} else if hold != "" {
			if err := tx.alertManagers(ctx, c.BuildingID, false, fmt.Sprintf("Consent #%d signed: device %d stays disabled", c.ID, c.DeviceID),
				hold+"\n", "privacy.hold:"+itoa(c.ID)); err != nil {
				return nil, err
			}
		} else if _, err := tx.setDesiredState(sysctx, c.DeviceID, doorledger.StateEnabled, fmt.Sprintf("consent #%d signed", c.ID)); err != nil {
			return nil, err
		}
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, last.Signer.ID, expires)
	if err != nil {
		return nil, err
	}
	loc := b.Location()
	typedNote := ""
	if sig.NameDiffers {
		typedNote = fmt.Sprintf("You signed with the name “%s”, which differs from the name on the roster, “%s”;\nthe record shows both.\n", sig.TypedName, last.Signer.Name)
	}
	others := ""
	if len(c.Signers) > 1 {
		others = "Signed by: " + signedByWords(c) + ".\n"
	}
	body := fmt.Sprintf(`Dear %s,

You signed consent #%d for %s: %s %s (serial %s) at %s.
Signed: %s (%s). Your registered address, %s, was verified by %s.
%s%sTerms SHA-256: %s
It lasts until %s unless renewed.

%s
Keep this mail as your copy.
— Doorledger, for the managers of %s
`, last.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
		tx.now.Format("2006-01-02 15:04 MST"), tx.now.In(loc).Format("2006-01-02 15:04 MST"), last.Signer.Email, methodWords(method), typedNote, others, sig.TermsSHA256,
		expires.In(loc).Format("2006-01-02"), links, b.Name)
	if err := tx.queueMail(ctx, &doorledger.Message{To: last.Signer.Email, Subject: "You signed consent #" + itoa(c.ID) + " for " + b.Name,
		Body: body, Kind: "signed", BuildingID: b.ID}, ""); err != nil {
		return nil, err
	}
	for _, rs := range c.Signers { // the earlier signers: their links of their own confirmation still work
		if rs.Signature == nil || rs.Signer.ID == last.Signer.ID {
			continue
		}
		if err := tx.queueMail(ctx, &doorledger.Message{To: rs.Signer.Email, Subject: "Consent #" + itoa(c.ID) + " for " + b.Name + " is now signed",
			Body: fmt.Sprintf(`Dear %s,

Consent #%d for %s: %s %s (serial %s) at %s, which you signed, now has the
signatures its policy requires (%s): signed by %s.
The device is being enabled. It lasts until %s unless renewed.

The withdraw and "I did not sign this" links of the mail confirming your
signature still work: any one signer's withdrawal ends the consent.
— Doorledger, for the managers of %s
`, rs.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Policy.Describe(), signedByWords(c),
				expires.In(loc).Format("2006-01-02"), b.Name), Kind: "signed", BuildingID: b.ID}, ""); err != nil {
			return nil, err
		}
	}
	typedNote = ""
	if sig.NameDiffers {
		typedNote = fmt.Sprintf("\nThe typed name, “%s”, DIFFERS from the roster name; the signer confirmed signing with it.\n", sig.TypedName)
	}
	who := fmt.Sprintf("%s (%s) signed consent #%d", last.Signer.Name, last.Signer.Title, c.ID)
	if len(c.Signers) > 1 {
		who = fmt.Sprintf("Consent #%d now has the signatures its policy requires (%s): %s. The last", c.ID, c.Policy.Describe(), signedByWords(c)) +
			fmt.Sprintf(", %s (%s), signed", last.Signer.Name, last.Signer.Title)
	}
	if err := tx.alertManagers(ctx, b.ID, false, fmt.Sprintf("Consent #%d signed at %s", c.ID, b.Name),
		fmt.Sprintf("%s for %s %s, serial %s, at %s; their roster address was verified by %s. The device is being enabled.\n%s\n%s/consents/%d\n",
			who, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, methodWords(method), typedNote, s.BaseURL, c.ID), ""); err != nil {
		return nil, err
	}
	return findConsent(ctx, tx, c.ID)
}

// signedByWords lists a request's signatures: "Paula Prez (President) and Tom Trent (Treasurer)".
func signedByWords(c *doorledger.Consent) string {
	var names []string
	for _, rs := range c.Signers {
		if rs.Signature != nil {
			names = append(names, rs.Signer.Name+" ("+rs.Signer.Title+")")
		}
	}
	return doorledger.JoinAnd(names)
}

// mailSignatureRecorded confirms one signature of a request that awaits
// others, with the signer's own withdraw and "I did not sign this" links
// (working until the consent could last at most).
func (s *ConsentService) mailSignatureRecorded(ctx context.Context, tx *Tx, c *doorledger.Consent, me *doorledger.RequestSigner, b *doorledger.Building,
	method doorledger.VerificationMethod, differs bool, typed string) error {
	horizon := c.RequestExpiresAt
	if horizon.IsZero() {
		horizon = tx.now
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, me.Signer.ID, horizon.AddDate(0, b.ConsentMonths, 0))
	if err != nil {
		return err
	}
	typedNote := ""
	if differs {
		typedNote = fmt.Sprintf("You signed with the name “%s”, which differs from the name on the roster, “%s”;\nthe record shows both.\n", typed, me.Signer.Name)
	}
	body := fmt.Sprintf(`Dear %s,

Your signature on consent #%d for %s is recorded: %s %s (serial %s) at %s.
Signed: %s. Your registered address, %s, was verified by %s.
%sTerms SHA-256: %s

This building requires %s. Signed so far: %s.
Still needed: %s. Nothing is enabled until then; you will be mailed when the
consent is signed.

If you change your mind before or after, or did not sign this:
%s
Keep this mail as your copy.
— Doorledger, for the managers of %s
`, me.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
		tx.now.In(b.Location()).Format("2006-01-02 15:04 MST"), me.Signer.Email, methodWords(method), typedNote, c.TermsSHA256,
		c.Policy.Describe(), signedByWords(c), c.Need.Describe(), links, b.Name)
	return tx.queueMail(ctx, &doorledger.Message{To: me.Signer.Email, Subject: "Your signature on consent #" + itoa(c.ID) + " for " + b.Name + " is recorded",
		Body: body, Kind: "signed", BuildingID: b.ID}, "")
}

// mailTurns mails, under ordered signing, each signer whose turn has come
// (the earlier signers signed or left the roster) and who was not told yet,
// a fresh signing link. Each is told once.
func (s *ConsentService) mailTurns(ctx context.Context, tx *Tx, c *doorledger.Consent) error {
	if !c.Policy.Ordered || c.Status != doorledger.ConsentAwaiting {
		return nil
	}
	for _, rs := range c.Signers {
		if rs.State != doorledger.SignerToSign || rs.Position == 1 { // the first was asked at the request
			continue
		}
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO consent_reminders (consent_id, signer_id, kind, day, sent_at) VALUES (?, ?, 'turn', 0, ?)`,
			c.ID, rs.Signer.ID, formatTime(tx.now))
		if err != nil {
			return err
		} else if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if c.InPerson {
			continue // signed on the installer's screen: no link to mail
		}
		if err := s.mailSigningLink(ctx, tx, c, rs, "turn"); err != nil {
			return err
		}
	}
	return nil
}

// methodWords says how the signer's roster address was verified.
func methodWords(m doorledger.VerificationMethod) string {
	if m == doorledger.VerifyCode {
		return "a 6-digit code mailed to it (in person)"
	}
	return "a one-time link mailed to it"
}

// issueEndLinks issues a named signer's withdraw and "I did not sign this"
// links for a consent (working until 30 days past its lapse) and returns the
// text of a mail that offers them.
func (s *ConsentService) issueEndLinks(ctx context.Context, tx *Tx, consentID, signerID int64, expires time.Time) (string, error) {
	withdraw, err := tx.issueToken(ctx, consentID, signerID, "withdraw", expires.Sub(tx.now)+30*24*time.Hour)
	if err != nil {
		return "", err
	}
	dispute, err := tx.issueToken(ctx, consentID, signerID, "dispute", expires.Sub(tx.now)+30*24*time.Hour)
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
	t, err := tx.findToken(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	c, err := findConsent(ctx, tx, t.consentID)
	if err != nil {
		return nil, err
	}
	me := signerOf(c, t.signerID)
	if c.Status == doorledger.ConsentAwaiting && me.Signature == nil {
		if !me.Signer.Active {
			return nil, signerRemoved(c, me.Signer) // said before "link not valid": the signer's links were withdrawn with them
		}
		if waiting := c.WaitingFor(me.Signer.ID); len(waiting) > 0 && t.live {
			return nil, waitingErr(c, waiting) // the link stays usable for their turn
		}
	}
	if _, err := tx.useToken(ctx, token, "sign", true); err != nil {
		return nil, err
	}
	if c.Status != doorledger.ConsentAwaiting || me.Signature != nil {
		return nil, notFoundLink
	}
	signed, err := s.sign(ctx, tx, c, me, in, doorledger.VerifyLink)
	if err != nil {
		return nil, err
	}
	return signed, tx.Commit()
}

// Decline refuses by link: any one named signer's "no" ends the request.
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
	t, err := tx.useToken(ctx, token, "sign", true)
	if err != nil {
		return err
	}
	id := t.consentID
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return err
	}
	me := signerOf(c, t.signerID)
	if !me.Signer.Active || me.Signature != nil {
		return notFoundLink
	}
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'declined', status_at = ?, status_note = ? WHERE id = ? AND status = 'awaiting_signature' AND expired_at IS NULL`,
		formatTime(tx.now), reason, id)
	if err != nil {
		return err
	} else if n, _ := res.RowsAffected(); n == 0 {
		return notFoundLink
	}
	if err := tx.closeRequestLinks(ctx, id); err != nil {
		return err
	}
	note := reason
	if len(c.Signers) > 1 {
		note = fmt.Sprintf("by %s (%s): %s", me.Signer.Name, me.Signer.Title, orDash(reason))
	}
	if err := tx.consentEvent(ctx, id, "declined", note); err != nil {
		return err
	}
	if err := tx.auditAs(ctx, 0, fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email), "consent.decline", c.BuildingID, "consent", id, map[string]string{"reason": reason}); err != nil {
		return err
	}
	if err := tx.alertManagers(ctx, c.BuildingID, false, fmt.Sprintf("Consent #%d declined at %s", id, c.BuildingName),
		fmt.Sprintf("%s (%s) declined consent #%d for %s %s, serial %s, at %s.\nReason: %s\n\nThe device stays disabled.\n%s/consents/%d\n",
			me.Signer.Name, me.Signer.Title, id, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, orDash(reason), s.BaseURL, id), ""); err != nil {
		return err
	}
	return tx.Commit()
}

// closeRequestLinks ends the signing links and codes of a request that will
// take no more signatures.
func (tx *Tx) closeRequestLinks(ctx context.Context, consentID int64) error {
	at := formatTime(tx.now)
	if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND purpose = 'sign' AND used_at IS NULL`, at, consentID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, at, consentID)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// installerConsent loads a consent of the signed-in installer, awaiting
// signature, and the named signer to sign in person (signerID 0: the next
// whose turn it is).
func installerConsent(ctx context.Context, q querier, id, signerID int64) (*doorledger.Consent, *doorledger.RequestSigner, error) {
	c, err := checkConsent(ctx, q, id)
	if err != nil {
		return nil, nil, err
	}
	if callerFrom(ctx).role() != doorledger.RoleInstaller {
		return nil, nil, doorledger.Errorf(doorledger.ENOTFOUND, "Consent not found.")
	}
	if c.Status != doorledger.ConsentAwaiting {
		return nil, nil, doorledger.Errorf(doorledger.ECONFLICT, "This consent is %s; there is nothing to sign.", strings.ReplaceAll(string(c.Status), "_", " "))
	}
	var me *doorledger.RequestSigner
	if signerID == 0 {
		for i := range c.Signers {
			if c.Signers[i].State == doorledger.SignerToSign {
				me = &c.Signers[i]
				break
			}
		}
		if me == nil {
			me = signerOf(c, 0)
		}
	} else if me = c.RequestSigner(signerID); me == nil {
		return nil, nil, doorledger.Errorf(doorledger.ENOTFOUND, "This request does not name that signer.")
	}
	switch {
	case !me.Signer.Active:
		return nil, nil, signerRemoved(c, me.Signer)
	case me.Signature != nil:
		return nil, nil, doorledger.Errorf(doorledger.ECONFLICT, "%s signed consent #%d already: one person signs once.", me.Signer.Name, c.ID)
	}
	if waiting := c.WaitingFor(me.Signer.ID); len(waiting) > 0 {
		return nil, nil, waitingErr(c, waiting)
	}
	return c, me, nil
}

func codeHash(consentID int64, code string) string {
	sum := sha256.Sum256([]byte(itoa(consentID) + ":" + code))
	return hex.EncodeToString(sum[:])
}

func (s *ConsentService) SendCode(ctx context.Context, consentID, signerID int64) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	c, me, err := installerConsent(ctx, tx, consentID, signerID)
	if err != nil {
		return err
	}
	var recent int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_codes WHERE consent_id = ? AND COALESCE(signer_id, ?) = ? AND created_at > ?`,
		consentID, c.SignerID, me.Signer.ID, formatTime(tx.now.Add(-time.Hour))).Scan(&recent); err != nil {
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
	// A new code replaces any earlier one of the same signer.
	if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND COALESCE(signer_id, ?) = ? AND used_at IS NULL`,
		formatTime(tx.now), consentID, c.SignerID, me.Signer.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO consent_codes (consent_id, signer_id, code_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		consentID, me.Signer.ID, codeHash(consentID, code), formatTime(tx.now), formatTime(tx.now.Add(doorledger.CodeTTL))); err != nil {
		return err
	}
	body := fmt.Sprintf(`Dear %s,

%s of %s is with you to sign consent #%d for %s: %s %s (serial %s) at %s.

Your code is: %s

Type it on the installer's screen only if you are there and want to review and
sign. It works for 10 minutes. If you are not with the installer, do not share
it; ignore this mail.

— Doorledger, for the managers of %s
`, me.Signer.Name, c.Installer, orNone(c.Company), c.ID, c.BuildingName, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, code, c.BuildingName)
	if err := tx.queueMail(ctx, &doorledger.Message{To: me.Signer.Email, Subject: "Your code to sign consent #" + itoa(c.ID),
		Body: body, Kind: "signing_code", BuildingID: c.BuildingID}, ""); err != nil {
		return err
	}
	if err := tx.consentEvent(ctx, consentID, "code_sent", "to "+me.Signer.Email); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent.code_sent", c.BuildingID, "consent", consentID, map[string]any{"signer": me.Signer.ID}); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *ConsentService) InPersonSession(ctx context.Context, consentID, signerID int64) (*doorledger.SigningSession, error) {
	c, me, err := installerConsent(ctx, s.db.read, consentID, signerID)
	if err != nil {
		return nil, err
	}
	sess, err := signingSession(ctx, s.db.read, c, me)
	if err != nil {
		return nil, err
	}
	// The installer's screen: the signers' addresses are masked in the terms
	// shown; the form posts back the hash of the terms signed, with them.
	masked := c.ForInstaller()
	sess.Consent, sess.Terms, sess.Me = masked, c.MaskAddresses(sess.Terms), masked.RequestSigner(me.Signer.ID)
	if sess.Me == nil {
		sess.Me = &doorledger.RequestSigner{Signer: masked.Signer, Position: 1}
	}
	return sess, nil
}

func (s *ConsentService) SignInPerson(ctx context.Context, consentID, signerID int64, code string, in doorledger.SignInput) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	c, me, err := installerConsent(ctx, tx, consentID, signerID)
	if err != nil {
		return nil, err
	}
	var codeID int64
	var hash, expires string
	var attempts int
	err = tx.QueryRowContext(ctx, `SELECT id, code_hash, expires_at, attempts FROM consent_codes WHERE consent_id = ? AND COALESCE(signer_id, ?) = ? AND used_at IS NULL ORDER BY id DESC LIMIT 1`,
		consentID, c.SignerID, me.Signer.ID).Scan(&codeID, &hash, &expires, &attempts)
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
	sess, err := signingSession(ctx, tx, c, me)
	if err != nil {
		return nil, err
	}
	if err := validateSign(&in, sess); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE id = ?`, formatTime(tx.now), codeID); err != nil {
		return nil, err
	}
	signed, err := s.sign(ctx, tx, c, me, in, doorledger.VerifyCode)
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
	t, err := tx.findToken(ctx, token, "withdraw", "dispute")
	if err != nil {
		return nil, "", err
	}
	c, err := findConsent(ctx, tx, t.consentID)
	if err != nil {
		return nil, "", err
	}
	me := signerOf(c, t.signerID)
	sess, err := doneSession(ctx, tx, c, me)
	if err != nil {
		return nil, "", err
	}
	// The link works while the consent is signed, or while the request this
	// signer signed awaits others; after that (or once used) it says what
	// happened. Either way, only what the signer already saw.
	sess.Done = !t.live || !endable(c)
	return sess, t.purpose, nil
}

// endable reports whether a signer's withdraw or dispute link can end c: a
// signed consent, or a request awaiting further signatures.
func endable(c *doorledger.Consent) bool {
	return c.Status == doorledger.ConsentSigned || c.Status == doorledger.ConsentAwaiting
}

func (s *ConsentService) MailEndLinks(ctx context.Context, token string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	t, err := tx.findToken(ctx, token, "sign", "withdraw", "dispute")
	if err != nil {
		return err
	}
	c, err := findConsent(ctx, tx, t.consentID)
	if err != nil {
		return err
	}
	me := signerOf(c, t.signerID)
	if c.Status != doorledger.ConsentSigned && (c.Status != doorledger.ConsentAwaiting || me.Signature == nil) {
		return doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d is %s: there is nothing left to withdraw or report.", c.ID, strings.ToLower(statusWords(c.Status)))
	}
	if me.Signature == nil {
		return doorledger.Errorf(doorledger.ECONFLICT, "%s did not sign consent #%d: there is no signature of theirs to withdraw or report.", me.Signer.Name, c.ID)
	}
	var recent int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_events WHERE consent_id = ? AND kind = 'links_mailed' AND at > ?`,
		c.ID, formatTime(tx.now.Add(-24*time.Hour))).Scan(&recent); err != nil {
		return err
	}
	if recent >= doorledger.EndLinkMailsPerDay {
		return doorledger.Errorf(doorledger.ETOOMANY, "The links were mailed %d times in the last day. Look for those mails at your registered address, or try again tomorrow.", recent)
	}
	expires := c.ExpiresAt
	if expires.IsZero() {
		expires = c.RequestExpiresAt.AddDate(0, 120, 0)
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, me.Signer.ID, expires)
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
`, me.Signer.Name, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.BuildingName, links, c.BuildingName)
	if err := tx.queueMail(ctx, &doorledger.Message{To: me.Signer.Email, Subject: "Links to withdraw or report consent #" + itoa(c.ID) + " for " + c.BuildingName,
		Body: body, Kind: "signed", BuildingID: c.BuildingID}, ""); err != nil { // the same links as the confirmation
		return err
	}
	if err := tx.consentEvent(ctx, c.ID, "links_mailed", "withdraw and “I did not sign this” links mailed again to "+me.Signer.Email); err != nil {
		return err
	}
	if err := tx.auditAs(ctx, 0, fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email), "consent.links_mailed", c.BuildingID, "consent", c.ID, nil); err != nil {
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
	var t linkToken
	for _, p := range []string{"withdraw", "dispute"} {
		if t, err = tx.useToken(ctx, token, p, true); err == nil {
			break
		} else if doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			return nil, err
		}
	}
	if err != nil {
		return nil, notFoundLink
	}
	id := t.consentID
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	me := signerOf(c, t.signerID)
	status := doorledger.ConsentWithdrawn
	if t.purpose == "dispute" {
		status = doorledger.ConsentDisputed
	}
	actor := fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email)
	if len(c.Signers) > 1 && reason == "" {
		reason = "by " + me.Signer.Name + " (" + me.Signer.Title + ")"
	} else if len(c.Signers) > 1 {
		reason = "by " + me.Signer.Name + " (" + me.Signer.Title + "): " + reason
	}
	sysctx := doorledger.NewSystemContext(ctx, actor)
	if c.Status == doorledger.ConsentAwaiting {
		err = s.endRequest(sysctx, tx, c, status, reason)
	} else {
		err = s.endConsent(sysctx, tx, c, status, reason)
	}
	if err != nil {
		return nil, err
	}
	// Every link dies with the consent.
	if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, formatTime(tx.now), id); err != nil {
		return nil, err
	}
	ended, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if ended.Status == doorledger.ConsentDeclined { // a request ended before it was signed: say what the signer did
		ended.Status = status
	}
	return ended, tx.Commit()
}

// endRequest ends a request one of whose signers, having signed, withdraws
// their signature or reports that they did not sign it before the others
// signed: nothing was enabled, and nothing will be. The request is recorded
// as declined (only a signed consent can be withdrawn or disputed), with the
// fact — withdrawn or disputed, by whom — on its timeline, and the managers
// (and, for a dispute, the board) are alerted.
func (s *ConsentService) endRequest(ctx context.Context, tx *Tx, c *doorledger.Consent, status doorledger.ConsentStatus, note string) error {
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'declined', status_at = ?, status_note = ? WHERE id = ? AND status = 'awaiting_signature'`,
		formatTime(tx.now), string(status)+" "+note, c.ID)
	if err != nil {
		return fmt.Errorf("end request %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "This request no longer awaits signatures.")
	}
	if err := tx.closeRequestLinks(ctx, c.ID); err != nil {
		return err
	}
	if err := tx.consentEvent(ctx, c.ID, string(status), note+"; the request ends unsigned"); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent."+string(status), c.BuildingID, "consent", c.ID, map[string]any{"note": note, "request_ended": true}); err != nil {
		return err
	}
	what := "a signer WITHDREW their signature"
	if status == doorledger.ConsentDisputed {
		what = "a signer says they DID NOT SIGN it"
	}
	return tx.alertManagers(ctx, c.BuildingID, status == doorledger.ConsentDisputed,
		fmt.Sprintf("Consent request #%d ENDED — %s — %s", c.ID, what, c.BuildingName),
		fmt.Sprintf("Consent request #%d for %s %s, serial %s, at %s: %s (%s) before the signatures its policy requires were complete.\nIt ends unsigned; nothing was enabled and nothing will be.\n%s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, what, orDash(note), s.BaseURL, c.ID), "")
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
	id, err := s.followUp(ctx, tx, c, "link", []int64{signerID}, c.ID, 0)
	if err != nil {
		return nil, err
	}
	if err := tx.consentEvent(ctx, c.ID, "renewal_requested", fmt.Sprintf("consent #%d asks %s, %s", id, name, title)); err != nil {
		return nil, err
	}
	renewal, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return renewal, tx.Commit()
}

// followUp makes a new request for c's device under the building's policy
// now — a renewal, or an expired request sent again — naming first the
// signers given (those still on the roster), completed with the portal's
// proposal to satisfy the policy, and mails the signers their links.
func (s *ConsentService) followUp(ctx context.Context, tx *Tx, c *doorledger.Consent, mode string, first []int64, renewalOf, resendOf int64) (int64, error) {
	policy, err := tx.policyForRequest(ctx, c.BuildingID)
	if err != nil {
		return 0, err
	}
	b, err := findBuilding(ctx, tx, c.BuildingID)
	if err != nil {
		return 0, err
	}
	var named []*doorledger.Signer
	used := map[string]bool{}
	add := func(sg *doorledger.Signer) {
		if k := doorledger.AddressKey(sg.Email); !used[k] {
			used[k] = true
			named = append(named, sg)
		}
	}
	for _, id := range first {
		for _, sg := range b.Signers {
			if sg.ID == id {
				add(sg)
			}
		}
	}
	if doorledger.CheckNamedSigners(policy, named) != nil { // complete with the proposal
		for _, sg := range doorledger.ProposeSigners(policy, b.Signers) {
			if doorledger.CheckNamedSigners(policy, named) == nil {
				break
			}
			add(sg)
		}
	}
	if err := doorledger.CheckNamedSigners(policy, named); err != nil {
		msg, _ := policy.Unsatisfiable(b.Signers)
		if msg == "" {
			msg = doorledger.ErrorFields(err)["signer_id"]
		}
		return 0, signerFieldErr("The roster cannot satisfy this building's consent policy now: " + msg)
	}
	id, err := tx.insertRequest(ctx, c.BuildingID, c.InstallerID, policy, named, c.Device, mode, renewalOf, resendOf)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consents SET device_id = ? WHERE id = ?`, nullInt(c.DeviceID), id); err != nil {
		return 0, err
	}
	if mode == "in_person" {
		return id, nil
	}
	req, err := findConsent(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	return id, s.mailSigningLinks(ctx, tx, req)
}

func (s *ConsentService) ResendRequest(ctx context.Context, consentID int64) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	c, err := checkConsent(ctx, tx, consentID)
	if err != nil {
		return nil, err
	}
	cl := callerFrom(ctx)
	if cl.role() != doorledger.RoleInstaller {
		if err := checkManage(ctx, tx, cl, c.BuildingID); err != nil {
			return nil, err
		}
	}
	if c.Status != doorledger.ConsentExpired {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Only an expired request can be sent again; consent #%d is %s.", c.ID, statusWords(c.Status))
	}
	var again int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consents WHERE resend_of = ?`, c.ID).Scan(&again); err != nil {
		return nil, err
	} else if again > 0 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d was sent again already.", c.ID)
	}
	var first []int64
	for _, rs := range c.Signers {
		first = append(first, rs.Signer.ID)
	}
	mode := "link"
	if c.InPerson {
		mode = "in_person"
	}
	id, err := s.followUp(ctx, tx, c, mode, first, 0, c.ID)
	if err != nil {
		return nil, err
	}
	if err := tx.consentEvent(ctx, c.ID, "resent", fmt.Sprintf("sent again as consent #%d by %s", id, cl.label())); err != nil {
		return nil, err
	}
	if err := tx.audit(ctx, "consent.resend", c.BuildingID, "consent", id, map[string]any{"resend_of": c.ID}); err != nil {
		return nil, err
	}
	again2, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return forCaller(ctx, again2), tx.Commit()
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// withdrawSignerRequests follows a signer's removal from the roster, in the
// same transaction. In every request awaiting their signature they drop out:
// their signing links and codes stop working (a fact on its timeline, which
// says who is still needed). A request the signers left can no longer
// satisfy is stranded: its links and codes are withdrawn, its installer is
// told, and the managers are alerted; under ordered signing, the next
// signer is mailed that it is their turn. The managers are also told which
// signed consents now rest on a signer no longer on the roster (they stay
// valid: the signer was authorized when they signed). It returns the ids of
// the requests withdrawn (stranded) and of the signed consents.
func (tx *Tx) withdrawSignerRequests(ctx context.Context, baseURL string, buildingID, signerID int64) (withdrawn, signed []int64, err error) {
	list, err := queryConsents(ctx, tx, `SELECT `+consentColumns+consentFrom+`
		WHERE c.building_id = ? AND c.status IN ('awaiting_signature', 'signed') AND c.expired_at IS NULL
		AND (c.signer_id = ? OR EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = c.id AND n.signer_id = ?)) ORDER BY c.id`, buildingID, signerID, signerID)
	if err != nil || len(list) == 0 {
		return nil, nil, err
	}
	at := formatTime(tx.now)
	var pending, active, still strings.Builder
	byInstaller := map[int64][]*doorledger.Consent{}
	var installers []int64
	line := func(b *strings.Builder, c *doorledger.Consent) {
		fmt.Fprintf(b, "  consent #%d: %s %s, serial %s, at %s (installer %s, %s)\n    %s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Installer, orNone(c.Company), baseURL, c.ID)
	}
	var removed doorledger.Signer
	cs := &ConsentService{BaseURL: baseURL}
	for _, c := range list {
		me := signerOf(c, signerID)
		removed = me.Signer
		if c.Status == doorledger.ConsentSigned {
			if me.Signature != nil || c.SignerID == signerID {
				signed = append(signed, c.ID)
				line(&active, c)
			}
			continue
		}
		if me.Signature != nil {
			continue // they signed before leaving: their signature stands
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND purpose = 'sign' AND used_at IS NULL AND COALESCE(signer_id, ?) = ?`,
			at, c.ID, c.SignerID, signerID); err != nil {
			return nil, nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL AND COALESCE(signer_id, ?) = ?`,
			at, c.ID, c.SignerID, signerID); err != nil {
			return nil, nil, err
		}
		if c.Need.Satisfiable {
			line(&still, c)
			fmt.Fprintf(&still, "    still needed: %s\n", c.Need.Describe())
			if err := tx.consentEvent(ctx, c.ID, "links_withdrawn",
				fmt.Sprintf("%s was removed from the roster by %s: their signing link and codes no longer work. Still needed: %s", me.Signer.Name, callerFrom(ctx).label(), c.Need.Describe())); err != nil {
				return nil, nil, err
			}
			if err := cs.mailTurns(ctx, tx, c); err != nil {
				return nil, nil, err
			}
			continue
		}
		withdrawn = append(withdrawn, c.ID)
		line(&pending, c)
		if err := tx.closeRequestLinks(ctx, c.ID); err != nil {
			return nil, nil, err
		}
		note := fmt.Sprintf("%s was removed from the roster by %s: the signing link and codes no longer work", me.Signer.Name, callerFrom(ctx).label())
		if len(c.Signers) > 1 {
			note = fmt.Sprintf("%s was removed from the roster by %s: the signers left cannot satisfy the policy (%s), so the signing links and codes no longer work", me.Signer.Name, callerFrom(ctx).label(), c.Policy.Describe())
		}
		if err := tx.consentEvent(ctx, c.ID, "links_withdrawn", note); err != nil {
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
`, removed.Name, first.BuildingName, b.String(), first.BuildingName), Kind: "alert", BuildingID: buildingID}, ""); err != nil {
			return nil, nil, err
		}
	}
	if pending.Len()+active.Len()+still.Len() == 0 {
		return withdrawn, signed, nil
	}
	var body strings.Builder
	fmt.Fprintf(&body, "%s (%s) was removed from the roster of authorized signers of %s by %s.\n", removed.Name, removed.Title, first.BuildingName, callerFrom(ctx).label())
	if pending.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests awaiting their signature can no longer be signed (their links and codes no\nlonger work; the installers were told). Ask a current signer on each consent's page:\n%s", pending.String())
	}
	if still.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests that named them among several signers: they drop out, and the others can\nstill satisfy the policy:\n%s", still.String())
	}
	if active.Len() > 0 {
		fmt.Fprintf(&body, "\nConsents they signed stay valid (they were authorized when they signed) and are\nflagged on the building page and in reports. Ask a current signer to renew them on\neach consent's page:\n%s", active.String())
	}
	return withdrawn, signed, tx.alertManagers(ctx, buildingID, false,
		fmt.Sprintf("Signer removed at %s: %d request(s) withdrawn, %d signed consent(s) to renew", first.BuildingName, len(withdrawn), len(signed)), body.String(), "")
}
