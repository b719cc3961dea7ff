package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/jackc/pgx/v5"
)

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
	me, err := c.InPersonSigner(signerID)
	if err != nil {
		return nil, nil, err
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
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM consent_codes WHERE consent_id = $1 AND COALESCE(signer_id, $2) = $3 AND created_at > $4`,
		consentID, c.SignerID, me.Signer.ID, ts(tx.now.Add(-time.Hour))).Scan(&recent); err != nil {
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
	if _, err := tx.Exec(ctx, `UPDATE consent_codes SET used_at = $1 WHERE consent_id = $2 AND COALESCE(signer_id, $3) = $4 AND used_at IS NULL`,
		ts(tx.now), consentID, c.SignerID, me.Signer.ID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO consent_codes (consent_id, signer_id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		consentID, me.Signer.ID, codeHash(consentID, code), ts(tx.now), ts(tx.now.Add(doorledger.CodeTTL))); err != nil {
		return err
	}
	if err := tx.queueMail(ctx, notice.Code(c, me, code), ""); err != nil {
		return err
	}
	if err := tx.consentEvent(ctx, consentID, "code_sent", "to "+me.Signer.Email); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent.code_sent", c.BuildingID, "consent", consentID, map[string]any{"signer": me.Signer.ID}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *ConsentService) InPersonSession(ctx context.Context, consentID, signerID int64) (*doorledger.SigningSession, error) {
	c, me, err := installerConsent(ctx, s.db.pool, consentID, signerID)
	if err != nil {
		return nil, err
	}
	sess, err := signingSession(ctx, s.db.pool, c, me)
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
	var hash string
	var expires time.Time
	var attempts int
	err = tx.QueryRow(ctx, `SELECT id, code_hash, expires_at, attempts FROM consent_codes WHERE consent_id = $1 AND COALESCE(signer_id, $2) = $3 AND used_at IS NULL ORDER BY id DESC LIMIT 1`,
		consentID, c.SignerID, me.Signer.ID).Scan(&codeID, &hash, at(&expires), &attempts)
	codeErr := func(msg string) error {
		return &doorledger.Error{Code: doorledger.EINVALID, Message: msg, Fields: map[string]string{"code": msg}}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, codeErr("Send a code to the signer first.")
	case err != nil:
		return nil, err
	case attempts >= doorledger.CodeMaxAttempts:
		return nil, doorledger.Errorf(doorledger.ETOOMANY, "This code was entered wrong %d times. Send a new code.", attempts)
	case !expires.After(tx.now):
		return nil, codeErr("The code has expired. Send a new one.")
	}
	code = strings.TrimSpace(code)
	if subtle.ConstantTimeCompare([]byte(codeHash(consentID, code)), []byte(hash)) != 1 {
		// The failed try counts even though nothing else is written.
		if _, err := tx.Exec(ctx, `UPDATE consent_codes SET attempts = attempts + 1 WHERE id = $1`, codeID); err != nil {
			return nil, err
		}
		if err := tx.consentEvent(ctx, consentID, "code_failed", ""); err != nil {
			return nil, err
		}
		if err := tx.Commit(ctx); err != nil {
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
	if _, err := tx.Exec(ctx, `UPDATE consent_codes SET used_at = $1 WHERE id = $2`, ts(tx.now), codeID); err != nil {
		return nil, err
	}
	signed, err := s.sign(ctx, tx, c, me, in, doorledger.VerifyCode)
	if err != nil {
		return nil, err
	}
	return signed, tx.Commit(ctx)
}
