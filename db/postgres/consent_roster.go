package postgres

import (
	"context"

	"github.com/doorledger/doorledger"
)

// withdrawSignerRequests is RemoveSigner's part in the consents: in package
// sqlite (consent_roster.go) it closes the links and codes of the removed
// signer's pending requests, withdraws those the rest of the roster cannot
// satisfy, and mails the installers. The consent service is not ported to
// PostgreSQL yet (issue 15), so no request can exist here for a signer to
// be named by: this finds none and lets the removal go on, and refuses it
// (ECONFLICT, nothing written) should one exist. The port of the consent
// service replaces it with package sqlite's behaviour.
func (tx *Tx) withdrawSignerRequests(ctx context.Context, baseURL string, buildingID, signerID int64) (withdrawn, signed []int64, err error) {
	var named bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM consents c WHERE c.building_id = $1
		AND (c.signer_id = $2 OR EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = c.id AND n.signer_id = $2)))`,
		buildingID, signerID).Scan(&named); err != nil {
		return nil, nil, err
	}
	if named {
		return nil, nil, doorledger.Errorf(doorledger.ECONFLICT, "This signer is named by consent requests, which PostgreSQL storage cannot withdraw yet.")
	}
	return nil, nil, nil
}
