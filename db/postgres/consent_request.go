package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/jackc/pgx/v5"
)

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
		claimed = r.Paper.Claimed(v, tx.now, named, nil, policy)
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
	var deviceID int64
	err = tx.QueryRow(ctx, `INSERT INTO devices (building_id, vendor, model, serial, location, opens, installer_id, consent_id, origin, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'consent_request', $9) ON CONFLICT DO NOTHING RETURNING id`,
		buildingID, r.Device.Vendor, r.Device.Model, r.Device.Serial, r.Device.Location, r.Device.Opens, cl.id(), id, ts(tx.now)).Scan(&deviceID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &doorledger.Error{Code: doorledger.ECONFLICT, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"serial": "A device of this vendor with this serial number is already registered in this building."}}
	} else if err != nil {
		return nil, fmt.Errorf("insert device: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE consents SET device_id = $1 WHERE id = $2`, deviceID, id); err != nil {
		return nil, err
	}
	for _, p := range r.Photos {
		sum := sha256.Sum256(p.Data)
		if _, err := tx.Exec(ctx, `INSERT INTO consent_photos (consent_id, content_type, data, sha256, created_at) VALUES ($1, $2, $3, $4, $5)`,
			id, p.ContentType, p.Data, hex.EncodeToString(sum[:]), ts(tx.now)); err != nil {
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
	return c, tx.Commit(ctx)
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
	var id int64
	err = tx.QueryRow(ctx, `
		INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status_at, renewal_of,
			policy_id, term_months, request_expires_at, resend_of)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
		buildingID, installerID, named[0].ID, d.Vendor, d.Model, d.Serial, d.Location, d.Opens, mode, ts(tx.now), ts(tx.now), nullInt(renewalOf),
		policy.ID, b.ConsentMonths, ts(expires), nullInt(resendOf)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert consent: %w", err)
	}
	var names []string
	var ids []int64
	for i, sg := range named {
		if tag, err := tx.Exec(ctx, `INSERT INTO consent_signers (consent_id, signer_id, position, address_key) VALUES ($1, $2, $3, $4)
			ON CONFLICT ON CONSTRAINT consent_signers_address DO NOTHING`,
			id, sg.ID, i+1, doorledger.AddressKey(sg.Email)); err == nil && tag.RowsAffected() == 0 {
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
	if _, err := tx.Exec(ctx, `UPDATE consents SET terms = $1, terms_sha256 = $2 WHERE id = $3`, terms, doorledger.TermsSHA256(terms), id); err != nil {
		return 0, err
	}
	note := "under the policy: " + policy.Describe() + "; asked of " + doorledger.JoinAnd(names)
	if err := tx.consentEvent(ctx, id, "requested", note); err != nil {
		return 0, err
	}
	return id, tx.audit(ctx, "consent.request", buildingID, "consent", id, map[string]any{"signers": ids, "policy": policy.ID, "mode": mode,
		"serial": d.Serial, "renewal_of": renewalOf, "resend_of": resendOf, "expires": detailTime(expires)})
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
	m := notice.SigningLink(c, rs, why, buildingLoc(ctx, tx, c.BuildingID), s.link("/sign/", token))
	if err := tx.queueMail(ctx, m, ""); err != nil {
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
	err = tx.QueryRow(ctx, `SELECT name, title FROM signers WHERE id = $1 AND building_id = $2 AND active`, signerID, c.BuildingID).Scan(&name, &title)
	if errors.Is(err, pgx.ErrNoRows) {
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
	return renewal, tx.Commit(ctx)
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
	if _, err := tx.Exec(ctx, `UPDATE consents SET device_id = $1 WHERE id = $2`, nullInt(c.DeviceID), id); err != nil {
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
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM consents WHERE resend_of = $1`, c.ID).Scan(&again); err != nil {
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
	return forCaller(ctx, again2), tx.Commit(ctx)
}
