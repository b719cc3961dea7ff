package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/token"
	"github.com/jackc/pgx/v5"
)

// IssueCredential creates or rotates the device's secret: 32 random bytes,
// base64url, returned once. Only its SHA-256 is stored: a 256-bit random
// secret cannot be guessed, so it needs no slow password hash. Once the new
// secret is committed, the device's connections (made with the old one) are
// ended through Sessions and that is journaled.
func (s *DeviceService) IssueCredential(ctx context.Context, deviceID int64) (string, error) {
	secret, buildingID, rotated, err := s.issueCredential(ctx, deviceID)
	if err != nil {
		return "", err
	}
	if rotated {
		if err := s.endSessions(ctx, buildingID, deviceID, "secret rotated"); err != nil {
			return "", err
		}
	}
	return secret, nil
}

// endSessions ends the device's connections (Sessions) after a change of its
// credential committed, and journals how many were ended, if any.
func (s *DeviceService) endSessions(ctx context.Context, buildingID, deviceID int64, reason string) error {
	if s.Sessions == nil {
		return nil
	}
	// The change is committed: finish even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	n := s.Sessions.DisconnectDevice(ctx, deviceID)
	if n == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.audit(ctx, "device.disconnect", buildingID, "device", deviceID, map[string]any{"reason": reason, "sessions": n}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *DeviceService) issueCredential(ctx context.Context, deviceID int64) (secret string, buildingID int64, rotated bool, err error) {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", 0, false, err
	}
	defer tx.Rollback()
	d, err := tx.manageDevice(ctx, c, deviceID)
	if err != nil {
		return "", 0, false, err
	}
	if d.Retired {
		return "", 0, false, doorledger.Errorf(doorledger.ECONFLICT, "This device is retired; it gets no credential.")
	}
	if _, err := tx.disableIfConsentEnded(ctx, deviceID); err != nil {
		return "", 0, false, err
	}
	// FOR UPDATE: of two rotations at once, the second sees the first's
	// secret as the one it replaces.
	var prev string
	if err := tx.QueryRow(ctx, `SELECT secret_hash FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&prev); err != nil {
		return "", 0, false, err
	}
	secret, hash := token.New()
	brokerHash := ""
	if s.BrokerHash != nil {
		if brokerHash, err = s.BrokerHash(secret); err != nil {
			return "", 0, false, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET secret_hash = $1, mosquitto_hash = $2 WHERE id = $3`, hash, brokerHash, deviceID); err != nil {
		return "", 0, false, fmt.Errorf("store credential of device %d: %w", deviceID, err)
	}
	if err := tx.audit(ctx, "device.credential", d.BuildingID, "device", deviceID, map[string]any{"rotated": prev != ""}); err != nil {
		return "", 0, false, err
	}
	return secret, d.BuildingID, prev != "", tx.Commit(ctx)
}

// AuthenticateDevice checks a device's credential: EUNAUTHORIZED, alike, when
// the id is unknown, the secret empty or wrong, no credential was issued, or
// the device is retired. The SHA-256 comparison takes constant time.
func (s *DeviceService) AuthenticateDevice(ctx context.Context, deviceID int64, secret string) error {
	var stored string
	var retired bool
	err := s.db.pool.QueryRow(ctx, `SELECT secret_hash, retired FROM devices WHERE id = $1`, deviceID).Scan(&stored, &retired)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("authenticate device %d: %w", deviceID, err)
	}
	match := token.Matches(stored, secret) // compared even when not found, so timing says nothing
	if err != nil || retired || secret == "" || !match {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown device or wrong credential.")
	}
	return nil
}

// BrokerCredential is a device's credential in an external broker's format.
type BrokerCredential struct {
	DeviceID int64
	Hash     string
}

// MosquittoCredentials returns the broker-format hash of every device that may
// connect (not retired, credential issued with BrokerHash set): what an external
// Mosquitto's password file must hold. System or admin callers only.
func (s *DeviceService) MosquittoCredentials(ctx context.Context) ([]BrokerCredential, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db.pool, func(row interface{ Scan(...any) error }) (BrokerCredential, error) {
		var c BrokerCredential
		return c, row.Scan(&c.DeviceID, &c.Hash)
	}, `SELECT id, mosquitto_hash FROM devices WHERE NOT retired AND mosquitto_hash <> '' ORDER BY id`)
}
