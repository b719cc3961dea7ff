package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/namecheck"
)

// PolicyService implements doorledger.PolicyService.
type PolicyService struct {
	db *DB
}

// NewPolicyService returns the SQLite consent policy service.
func NewPolicyService(db *DB) *PolicyService { return &PolicyService{db: db} }

var _ doorledger.PolicyService = (*PolicyService)(nil)

func (s *PolicyService) FindConsentPolicy(ctx context.Context, buildingID int64) (*doorledger.ConsentPolicy, error) {
	if err := checkBuilding(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	return currentPolicy(ctx, s.db.read, buildingID)
}

func (s *PolicyService) SetConsentPolicy(ctx context.Context, buildingID int64, in doorledger.PolicyInput) (*doorledger.ConsentPolicy, error) {
	tx, err := s.db.beginManaging(ctx, buildingID)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	b, err := findBuilding(ctx, tx, buildingID)
	if err != nil {
		return nil, err
	}
	p, err := in.Policy(buildingID, b.Signers)
	if err != nil {
		return nil, err
	}
	before, err := currentPolicy(ctx, tx, buildingID)
	if err != nil {
		return nil, err
	}
	if p.ID, err = tx.recordPolicy(ctx, p); err != nil {
		return nil, err
	}
	if err := tx.audit(ctx, "consent_policy.set", buildingID, "consent_policy", p.ID, p.SetDetail(before)); err != nil {
		return nil, err
	}
	p, err = currentPolicy(ctx, tx, buildingID)
	if err != nil {
		return nil, err
	}
	return p, tx.Commit()
}

// recordPolicy appends p as the building's policy in force and returns its id.
func (tx *Tx) recordPolicy(ctx context.Context, p *doorledger.ConsentPolicy) (int64, error) {
	roles, _ := json.Marshal(nonNil(p.Roles))
	days, _ := json.Marshal(nonNil(p.ReminderDays))
	res, err := tx.ExecContext(ctx, `INSERT INTO consent_policies (building_id, required, roles, ordered, reminder_days, expiry_days, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.BuildingID, p.Required, string(roles), p.Ordered, string(days), p.ExpiryDays, formatTime(tx.now), callerFrom(ctx).label())
	if err != nil {
		return 0, fmt.Errorf("record consent policy: %w", err)
	}
	return res.LastInsertId()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

const policyColumns = `id, building_id, required, roles, ordered, reminder_days, expiry_days, created_at, created_by`

func scanPolicy(row interface{ Scan(...any) error }) (*doorledger.ConsentPolicy, error) {
	var p doorledger.ConsentPolicy
	var roles, days, at string
	if err := row.Scan(&p.ID, &p.BuildingID, &p.Required, &roles, &p.Ordered, &days, &p.ExpiryDays, &at, &p.SetBy); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(roles), &p.Roles); err != nil {
		return nil, fmt.Errorf("policy %d roles: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(days), &p.ReminderDays); err != nil {
		return nil, fmt.Errorf("policy %d reminder days: %w", p.ID, err)
	}
	p.SetAt = parseTime(at)
	return &p, nil
}

// currentPolicy is the building's policy in force: its latest, or the default.
func currentPolicy(ctx context.Context, q querier, buildingID int64) (*doorledger.ConsentPolicy, error) {
	p, err := scanPolicy(q.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM consent_policies WHERE building_id = ? ORDER BY id DESC LIMIT 1`, buildingID))
	if err == sql.ErrNoRows {
		return doorledger.DefaultPolicy(buildingID), nil
	}
	return p, err
}

// policyForRequest is the building's policy in force, recorded (the default
// is recorded too, the first time) so that the request can name its row.
func (tx *Tx) policyForRequest(ctx context.Context, buildingID int64) (*doorledger.ConsentPolicy, error) {
	p, err := currentPolicy(ctx, tx, buildingID)
	if err != nil || p.ID != 0 {
		return p, err
	}
	p.ID, err = tx.recordPolicy(doorledger.NewSystemContext(ctx, "default policy"), p)
	return p, err
}

// loadRequest completes a consent with what it was made under and who signs
// it: its recorded policy (the default for requests made before policies),
// the signers it names with their signatures, and what it still needs.
func loadRequest(ctx context.Context, q querier, c *doorledger.Consent, policyID sql.NullInt64) error {
	c.Policy = doorledger.DefaultPolicy(c.BuildingID)
	if policyID.Valid {
		p, err := scanPolicy(q.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM consent_policies WHERE id = ?`, policyID.Int64))
		if err != nil {
			return fmt.Errorf("consent %d policy: %w", c.ID, err)
		}
		c.Policy = p
	}
	rows, err := q.QueryContext(ctx, `SELECT n.position, s.id, s.name, s.title, s.email, s.active, s.removed_at,
			g.address, g.terms_sha256, g.typed_name, g.typed_name_differs, g.signature_png, g.signed_at, g.signed_tz, g.signed_ip, g.signed_ua, g.method
		FROM consent_signers n JOIN signers s ON s.id = n.signer_id
		LEFT JOIN consent_signatures g ON g.consent_id = n.consent_id AND g.signer_id = n.signer_id
		WHERE n.consent_id = ? ORDER BY n.position`, c.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	c.Signers = c.Signers[:0]
	for rows.Next() {
		var rs doorledger.RequestSigner
		var addr, hash, typed, tz, ip, ua, method sql.NullString
		var differs sql.NullInt64
		var png []byte
		var signedAt time.Time
		if err := rows.Scan(&rs.Position, &rs.Signer.ID, &rs.Signer.Name, &rs.Signer.Title, &rs.Signer.Email, &rs.Signer.Active, nullTime{&rs.Signer.RemovedAt},
			&addr, &hash, &typed, &differs, &png, nullTime{&signedAt}, &tz, &ip, &ua, &method); err != nil {
			return err
		}
		rs.Signer.BuildingID = c.BuildingID
		if !signedAt.IsZero() {
			terms := ""
			if c.Signature != nil {
				terms = c.Signature.Terms
			} else {
				terms = c.Terms
			}
			rs.Signature = &doorledger.ConsentSignature{TermsSHA256: hash.String, Terms: terms, TypedName: typed.String, SignaturePNG: png,
				SignedAt: signedAt, Timezone: tz.String, IP: ip.String, UserAgent: ua.String, Method: doorledger.VerificationMethod(method.String),
				SignerID: rs.Signer.ID, Signer: rs.Signer, Address: addr.String, NameDiffers: differs.Int64 == 1}
			if !differs.Valid { // signed before the comparison was recorded: compare now
				rs.Signature.NameDiffers = !namecheck.Match(typed.String, rs.Signer.Name)
			}
		}
		c.Signers = append(c.Signers, rs)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	c.Need = doorledger.ComputeNeed(c.Policy, c.Signers, c.Status == doorledger.ConsentAwaiting)
	if c.Signature != nil {
		if rs := c.RequestSigner(c.SignerID); rs != nil && rs.Signature != nil {
			c.Signature.Address, c.Signature.Signer = rs.Signature.Address, rs.Signer
		}
	}
	return nil
}
