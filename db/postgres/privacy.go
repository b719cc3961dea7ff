package postgres

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
)

// privacyHold says why the building's privacy profile keeps a device from
// being enabled ("": it does not), so that the enable is refused with a
// message people read before the database refuses it.
func (tx *Tx) privacyHold(ctx context.Context, deviceID int64) (string, error) {
	var profile string
	var legal, data, purpose, retention, url sql.NullString
	err := tx.QueryRow(ctx, `SELECT b.privacy_profile, v.legal_name, v.data_collected, v.purpose, v.retention, v.policy_url
		FROM devices d JOIN buildings b ON b.id = d.building_id LEFT JOIN vendor_disclosures v ON v.id = d.vendor_disclosure_id
		WHERE d.id = $1`, deviceID).Scan(&profile, &legal, &data, &purpose, &retention, &url)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && profile != doorledger.PrivacyProfileTDPA {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if !legal.Valid {
		return "This building follows the Tenant Data Privacy Act profile: name the device's vendor disclosure record (on the building's privacy page) before enabling it.", nil
	}
	d := doorledger.VendorDisclosure{LegalName: legal.String, DataCollected: data.String, Purpose: purpose.String, Retention: retention.String, PolicyURL: url.String}
	if missing := d.Missing(); len(missing) > 0 {
		return "This building follows the Tenant Data Privacy Act profile: the device's vendor disclosure record lacks " +
			strings.ReplaceAll(strings.Join(missing, ", "), "_", " ") + ", so the device cannot be enabled.", nil
	}
	return "", nil
}
