package postgres

import (
	"context"

	"github.com/doorledger/doorledger"
)

func (s *ConsentService) FindConsentByID(ctx context.Context, id int64) (*doorledger.Consent, error) {
	c, err := checkConsent(ctx, s.db.pool, id)
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
	if err := checkBuilding(ctx, s.db.pool, cl, f.BuildingID); err != nil {
		return nil, err
	}
	query, args := `SELECT `+consentColumns+consentFrom+` WHERE c.building_id = $1`, []any{f.BuildingID}
	if cl.role() == doorledger.RoleInstaller {
		f.InstallerID = cl.id()
	}
	if f.InstallerID != 0 {
		query += ` AND c.installer_id = $2`
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
		WHERE c.installer_id = $1 ORDER BY c.id DESC`, cl.id())
}

func (s *ConsentService) list(ctx context.Context, query string, args ...any) ([]*doorledger.Consent, error) {
	list, err := queryConsents(ctx, s.db.pool, query, args...)
	if err != nil {
		return nil, err
	}
	for i, c := range list {
		list[i] = forCaller(ctx, c)
	}
	return list, nil
}

func (s *ConsentService) ConsentTimeline(ctx context.Context, id int64) ([]doorledger.ConsentEvent, error) {
	c, err := checkConsent(ctx, s.db.pool, id)
	if err != nil {
		return nil, err
	}
	installer := callerFrom(ctx).role() == doorledger.RoleInstaller
	rows, err := s.db.pool.Query(ctx, `SELECT at, kind, note FROM consent_events WHERE consent_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []doorledger.ConsentEvent
	for rows.Next() {
		var e doorledger.ConsentEvent
		if err := rows.Scan(at(&e.At), &e.Kind, &e.Note); err != nil {
			return nil, err
		}
		if installer { // "signing link to zoe@…": not for installers
			e.Note = c.MaskAddresses(e.Note)
		}
		list = append(list, e)
	}
	return list, rows.Err()
}

func (s *ConsentService) ConsentPhotos(ctx context.Context, id int64) ([]doorledger.Photo, error) {
	if _, err := checkConsent(ctx, s.db.pool, id); err != nil {
		return nil, err
	}
	rows, err := s.db.pool.Query(ctx, `SELECT id, content_type, data, sha256 FROM consent_photos WHERE consent_id = $1 ORDER BY id`, id)
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
