package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

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
	return notice.EndLinks(s.link("/consent/withdraw/", withdraw), s.link("/consent/dispute/", dispute)), nil
}

// linkConsent resolves a token of one of the purposes as findToken does,
// live or not, with its consent and the named signer it is for.
func (tx *Tx) linkConsent(ctx context.Context, token string, purposes ...string) (linkToken, *doorledger.Consent, *doorledger.RequestSigner, error) {
	t, err := tx.findToken(ctx, token, purposes...)
	if err != nil {
		return t, nil, nil, err
	}
	c, err := findConsent(ctx, tx, t.consentID)
	if err != nil {
		return t, nil, nil, err
	}
	return t, c, c.SignerOf(t.signerID), nil
}
