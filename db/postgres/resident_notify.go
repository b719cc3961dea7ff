package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/jackc/pgx/v5"
)

// Residents' subscriptions (double opt-in, one-click unsubscribe) and the
// notices mailed to them.
//
// Notices are made from the journal, not from the code paths that change
// devices and consents: a device is enabled by a signature, disabled by a
// manager, a lockdown, a vendor or installer sweep, a consent's end (by the
// signer's links, a dispute or the lapse job), an unconsented report or door
// opening from the device itself, and found devices are recorded by
// managers. Every one of those writes its journal entry in the same
// transaction as the change, and future paths will too; so NotifyResidents,
// run every few seconds, reads the journal past a cursor and moves the cursor
// in the same transaction as the mail it queues. No path can be missed, each
// entry is mailed once (a crash rolls both back), and residents hear of a
// change a few seconds after it is committed.

// Subscription limits.
const (
	residentConfirmTTL     = 48 * time.Hour           // a confirmation link, and an unconfirmed address
	residentUnsubscribeTTL = 2 * 365 * 24 * time.Hour // the unsubscribe link of a notice
	residentConfirmsPerDay = 3                        // confirmation mails to one address a day
	// residentNoticeScan bounds the journal entries one pass reads.
	residentNoticeScan = 20000
)

// residentNoticeActions are the journal's facts residents are told of.
var residentNoticeActions = []string{"device.enable", "device.disable", "device.found", "device.unconsented",
	"consent.withdrawn", "consent.disputed", "consent.lapsed"}

func (s *ResidentService) link(path, token string) string { return s.BaseURL + path + token }

func (s *ResidentService) Subscribe(ctx context.Context, slug, email string) error {
	email, err := doorledger.NormalizeSubscriber(email)
	if err != nil {
		return err
	}
	ctx = residentContext(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	b, err := findNoticeBuilding(ctx, tx, slug)
	if err != nil {
		return err
	}
	var id int64
	var confirmed sql.NullString
	err = tx.QueryRow(ctx, `SELECT id, confirmed_at FROM resident_subscribers WHERE building_id = $1 AND email = $2`, b.id, email).Scan(&id, &confirmed)
	switch {
	case err == nil && confirmed.Valid:
		return nil // subscribed already: nothing to send, and the answer is the same
	case err == nil:
		var sent int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM resident_tokens WHERE subscriber_id = $1 AND purpose = 'confirm' AND created_at > $2`,
			id, ts(tx.now.Add(-24*time.Hour))).Scan(&sent); err != nil {
			return err
		}
		if sent >= residentConfirmsPerDay {
			return nil // enough mail to an address nobody confirmed; the answer stays the same
		}
	case errors.Is(err, pgx.ErrNoRows):
		var pending int
		if err := tx.lockKey(ctx, "resident subscribers", b.id); err != nil { // one cap for subscriptions made at once
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM resident_subscribers WHERE building_id = $1 AND confirmed_at IS NULL`, b.id).Scan(&pending); err != nil {
			return err
		}
		if pending >= s.MaxPendingSubscribers {
			return doorledger.Errorf(doorledger.ETOOMANY, "Too many subscriptions are waiting for confirmation here. Please try again tomorrow.")
		}
		// The same address subscribing twice at once: the first row wins,
		// and its confirmation mail is the one sent.
		err := tx.QueryRow(ctx, `INSERT INTO resident_subscribers (building_id, email, created_at) VALUES ($1, $2, $3)
			ON CONFLICT ON CONSTRAINT resident_subscribers_email DO NOTHING RETURNING id`, b.id, email, ts(tx.now)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("insert subscriber: %w", err)
		}
	default:
		return err
	}
	token, err := tx.residentToken(ctx, id, "confirm", residentConfirmTTL)
	if err != nil {
		return err
	}
	if err := tx.queueMail(ctx, notice.ResidentConfirm(email, b.name, b.id, s.link(doorledger.ResidentConfirmPath, token)), ""); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// residentToken stores a new one-time token of a subscriber (its SHA-256 only).
func (tx *Tx) residentToken(ctx context.Context, subscriberID int64, purpose string, ttl time.Duration) (string, error) {
	token, hash := newToken()
	_, err := tx.Exec(ctx, `INSERT INTO resident_tokens (token_hash, subscriber_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hash, subscriberID, purpose, ts(tx.now), ts(tx.now.Add(ttl)))
	if err != nil {
		return "", fmt.Errorf("store %s token: %w", purpose, err)
	}
	return token, nil
}

var residentLinkNotFound = doorledger.Errorf(doorledger.ENOTFOUND, "This link does not work (any more). A confirmation link works for 48 hours; after unsubscribing, the address is forgotten.")

// residentLink is a live subscriber's link: what it is about, and for whom.
type residentLink struct {
	*doorledger.ResidentLink
	subscriber, building int64
	used                 bool
}

// residentLinkOf finds a live token (unexpired, of a subscriber still
// known) of purpose ("" for either).
func residentLinkOf(ctx context.Context, q querier, token, purpose string, now time.Time) (*residentLink, error) {
	l := &residentLink{ResidentLink: &doorledger.ResidentLink{}}
	var usedAt, confirmed sql.NullString
	lock := ""
	if _, ok := q.(*Tx); ok {
		// The same link used twice at once (two clicks): the uses take turns,
		// and the second finds what the first did.
		lock = " FOR UPDATE OF t, s"
	}
	err := q.QueryRow(ctx, `SELECT t.subscriber_id, s.building_id, t.purpose, t.used_at, s.confirmed_at, b.name, COALESCE(n.slug, '')
		FROM resident_tokens t JOIN resident_subscribers s ON s.id = t.subscriber_id JOIN buildings b ON b.id = s.building_id
		LEFT JOIN building_notices n ON n.building_id = b.id
		WHERE t.token_hash = $1 AND t.expires_at > $2`+lock, HashToken(token), ts(now)).
		Scan(&l.subscriber, &l.building, &l.Purpose, &usedAt, &confirmed, &l.BuildingName, &l.NoticeSlug)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && purpose != "" && l.Purpose != purpose) {
		return nil, residentLinkNotFound
	} else if err != nil {
		return nil, err
	}
	l.used = usedAt.Valid
	l.Done = l.Purpose == "confirm" && confirmed.Valid
	return l, nil
}

func (s *ResidentService) OpenSubscriptionLink(ctx context.Context, token string) (*doorledger.ResidentLink, error) {
	l, err := residentLinkOf(ctx, s.db.pool, token, "", s.db.Now())
	if err != nil {
		return nil, err
	}
	return l.ResidentLink, nil
}

// useLink runs change in a transaction on the live link of purpose, then
// journals the building's count of subscribers under action.
func (s *ResidentService) useLink(ctx context.Context, token, purpose, action string, change func(*Tx, *residentLink) error) (*doorledger.ResidentLink, error) {
	ctx = residentContext(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	l, err := residentLinkOf(ctx, tx, token, purpose, tx.now)
	if err != nil {
		return nil, err
	}
	if purpose == "confirm" && (l.Done || l.used) {
		l.Done = true
		return l.ResidentLink, nil // confirmed already: saying so is no news to the link's holder
	}
	if err := change(tx, l); err != nil {
		return nil, err
	}
	// Only the count of subscribers, never an address.
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM resident_subscribers WHERE building_id = $1 AND confirmed_at IS NOT NULL`, l.building).Scan(&n); err != nil {
		return nil, err
	}
	if err := tx.auditAs(ctx, 0, residentActor, action, l.building, "building", l.building, map[string]any{"subscribers": n}); err != nil {
		return nil, err
	}
	return l.ResidentLink, tx.Commit(ctx)
}

func (s *ResidentService) ConfirmSubscription(ctx context.Context, token string) (*doorledger.ResidentLink, error) {
	return s.useLink(ctx, token, "confirm", "resident.subscribe", func(tx *Tx, l *residentLink) error {
		if _, err := tx.Exec(ctx, `UPDATE resident_subscribers SET confirmed_at = $1 WHERE id = $2`, ts(tx.now), l.subscriber); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE resident_tokens SET used_at = $1 WHERE token_hash = $2`, ts(tx.now), HashToken(token))
		return err
	})
}

func (s *ResidentService) Unsubscribe(ctx context.Context, token string) (*doorledger.ResidentLink, error) {
	return s.useLink(ctx, token, "unsubscribe", "resident.unsubscribe", func(tx *Tx, l *residentLink) error {
		// The address is forgotten, with every link mailed to it.
		if _, err := tx.Exec(ctx, `DELETE FROM resident_subscribers WHERE id = $1`, l.subscriber); err != nil {
			return fmt.Errorf("unsubscribe: %w", err)
		}
		l.Done = true
		return nil
	})
}

// residentFact is one journal entry residents are told of.
type residentFact struct {
	auditID    int64
	at         time.Time
	buildingID int64
	action     string
	objectType string
	objectID   int64
}

// NotifyResidents mails every confirmed subscriber of a building what the
// journal recorded about its devices since the last pass: one mail per
// subscriber and building per pass, each with its own unsubscribe link.
func (s *ResidentService) NotifyResidents(ctx context.Context) (int, error) {
	if err := s.purge(ctx); err != nil {
		return 0, err
	}
	// Nothing new (the usual case): answered without a transaction or a lock.
	var cursor, last int64
	if err := s.db.pool.QueryRow(ctx, `SELECT audit_id, COALESCE((SELECT MAX(id) FROM audit_entries), 0) FROM resident_notice_cursor`).
		Scan(&cursor, &last); err != nil {
		return 0, fmt.Errorf("notice cursor: %w", err)
	}
	if last <= cursor {
		return 0, nil
	}
	ctx = doorledger.NewSystemContext(ctx, "system")
	// Journal ids are not commit order here: an entry can commit after one
	// with a higher id was read, and a cursor moved past it would skip it.
	// The pass reads only up to a horizon below which every id is settled.
	horizon, err := s.settledJournal(ctx)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	// Passes of several instances take turns at the cursor.
	if err := tx.QueryRow(ctx, `SELECT audit_id FROM resident_notice_cursor WHERE id = 1 FOR UPDATE`).Scan(&cursor); err != nil {
		return 0, err
	}
	if horizon <= cursor {
		return 0, nil
	}
	hi := min(horizon, cursor+residentNoticeScan)
	facts, err := queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (*residentFact, error) {
		var f residentFact
		err := row.Scan(&f.auditID, at(&f.at), &f.buildingID, &f.action, &f.objectType, &f.objectID)
		return &f, err
	}, `SELECT id, at, building_id, action, object_type, object_id FROM audit_entries
		WHERE id > $1 AND id <= $2 AND building_id <> 0 AND action = ANY($3)
		ORDER BY id`, cursor, hi, residentNoticeActions)
	if err != nil {
		return 0, fmt.Errorf("read the journal for notices: %w", err)
	}
	var order []int64
	byBuilding := map[int64][]*residentFact{}
	for _, f := range facts {
		if _, ok := byBuilding[f.buildingID]; !ok {
			order = append(order, f.buildingID)
		}
		byBuilding[f.buildingID] = append(byBuilding[f.buildingID], f)
	}
	sent := 0
	for _, b := range order {
		n, err := s.notifyBuilding(ctx, tx, b, byBuilding[b])
		if err != nil {
			return 0, fmt.Errorf("notices for building %d: %w", b, err)
		}
		sent += n
	}
	// Past what was read. This pass's own journal entries lie past the
	// horizon: the next pass reads them, and finds no notice among them.
	if _, err := tx.Exec(ctx, `UPDATE resident_notice_cursor SET audit_id = $1 WHERE id = 1`, hi); err != nil {
		return 0, err
	}
	return sent, tx.Commit(ctx)
}

// settledJournal returns the highest journal id below which no entry can
// still appear: it waits for the transactions writing the journal now to
// end (a SHARE lock on audit_entries, for a moment, in a transaction of its
// own), so every id up to the highest is committed or never will be.
func (s *ResidentService) settledJournal(ctx context.Context) (int64, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_entries IN SHARE MODE`); err != nil {
		return 0, err
	}
	var horizon int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_entries`).Scan(&horizon); err != nil {
		return 0, err
	}
	return horizon, tx.Commit(ctx)
}

// notifyBuilding queues one notice for each confirmed subscriber of the
// building, listing facts, and journals that it did.
func (s *ResidentService) notifyBuilding(ctx context.Context, tx *Tx, buildingID int64, facts []*residentFact) (int, error) {
	type subscriber struct {
		id    int64
		email string
	}
	subs, err := queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (subscriber, error) {
		var s subscriber
		err := row.Scan(&s.id, &s.email)
		return s, err
	}, `SELECT id, email FROM resident_subscribers WHERE building_id = $1 AND confirmed_at IS NOT NULL ORDER BY id`, buildingID)
	if err != nil || len(subs) == 0 {
		return 0, err
	}
	var name, tz, slug string
	if err := tx.QueryRow(ctx, `SELECT b.name, b.timezone, COALESCE(n.slug, '') FROM buildings b
		LEFT JOIN building_notices n ON n.building_id = b.id WHERE b.id = $1`, buildingID).Scan(&name, &tz, &slug); err != nil {
		return 0, err
	}
	loc := (&doorledger.Building{Timezone: tz}).Location()
	var lines []string
	var ids []int64
	for _, f := range facts {
		line, err := s.factLine(ctx, tx, f, loc)
		if err != nil {
			return 0, err
		} else if line == "" {
			continue
		}
		lines = append(lines, line)
		ids = append(ids, f.auditID)
	}
	if len(lines) == 0 {
		return 0, nil
	}
	for _, sub := range subs {
		token, err := tx.residentToken(ctx, sub.id, "unsubscribe", residentUnsubscribeTTL)
		if err != nil {
			return 0, err
		}
		if err := tx.queueMail(ctx, notice.ResidentNotice(sub.email, name, buildingID, lines, s.BaseURL+doorledger.NoticePath+slug, s.link(doorledger.ResidentUnsubscribePath, token)),
			fmt.Sprintf("resident.notice:%d:%d", sub.id, ids[len(ids)-1])); err != nil {
			return 0, err
		}
	}
	if err := tx.audit(ctx, "resident.notify", buildingID, "building", buildingID,
		map[string]any{"entries": ids, "subscribers": len(subs)}); err != nil {
		return 0, err
	}
	return len(subs), nil
}

// factLine says one fact in a sentence, in the building's time. It names the
// device by vendor, model, number and door, the consent by the signer's role.
// It is "" for a fact that changes nothing residents see (the end of a
// consent the device was renewed off).
func (s *ResidentService) factLine(ctx context.Context, tx *Tx, f *residentFact, loc *time.Location) (string, error) {
	var q string
	switch f.objectType {
	case "device":
		q = `SELECT d.id, d.vendor, d.model, d.opens, COALESCE(s.title, ''), c.signed_at, c.expires_at, COALESCE(d.consent_id, 0) FROM devices d
			LEFT JOIN consents c ON c.id = d.consent_id LEFT JOIN signers s ON s.id = c.signer_id WHERE d.id = $1`
	case "consent":
		q = `SELECT d.id, d.vendor, d.model, d.opens, COALESCE(s.title, ''), c.signed_at, c.expires_at, COALESCE(d.consent_id, 0) FROM consents c
			JOIN devices d ON d.id = c.device_id JOIN signers s ON s.id = c.signer_id WHERE c.id = $1`
	default:
		return "", nil
	}
	var id, current int64
	var vendor, model, opens, role string
	var signed, expires time.Time
	err := tx.QueryRow(ctx, q, f.objectID).Scan(&id, &vendor, &model, &opens, &role, at(&signed), at(&expires), &current)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if f.objectType == "consent" && current != f.objectID {
		return "", nil // a consent the device no longer runs on (renewed since): nothing changes for residents
	}
	return notice.ResidentFact{Action: f.action, At: f.at, DeviceID: id, Vendor: vendor, Model: model, Opens: opens, Role: role,
		Signed: signed, Expires: expires}.Line(loc), nil
}

// purge forgets unconfirmed addresses and expired links, at most once an hour.
func (s *ResidentService) purge(ctx context.Context) error {
	now := s.db.Now()
	if now.Sub(s.lastPurge) < time.Hour && !s.lastPurge.IsZero() {
		return nil
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ctx, `DELETE FROM resident_subscribers WHERE confirmed_at IS NULL AND created_at < $1`,
		ts(tx.now.Add(-residentConfirmTTL))); err != nil {
		return fmt.Errorf("forget unconfirmed subscribers: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM resident_tokens WHERE expires_at <= $1`, ts(tx.now)); err != nil {
		return fmt.Errorf("forget expired resident links: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	s.lastPurge = now
	return nil
}
