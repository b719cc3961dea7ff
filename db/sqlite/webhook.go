package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
)

// WebhookService implements doorledger.WebhookService: subscriptions of other
// systems to the portal's events, and their deliveries (migrations/120).
//
// Deliveries are queued by the transactions that make the events: auditAs
// queues one per subscription to the entry's event type (queueJournalEvent),
// and the unlock writer one per anomalous event (queueEvent), so an event is
// committed or rolled back with its change and never lost between commit and
// send. The dispatcher (package hooks) posts them.
type WebhookService struct{ db *DB }

// NewWebhookService returns the SQLite webhook service.
func NewWebhookService(db *DB) *WebhookService { return &WebhookService{db: db} }

var _ doorledger.WebhookService = (*WebhookService)(nil)

// queueEventExistsSQL says whether any active subscription takes an event type.
const queueEventExistsSQL = `SELECT EXISTS (SELECT 1 FROM webhook_subscriptions
	WHERE disabled_at IS NULL AND instr(event_types, ' ' || ?1 || ' ') > 0)`

// queueEventSQL queues one delivery of an event per active subscription to its type.
const queueEventSQL = `INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, building_id, created_at, payload, give_up_at)
	SELECT id, ?1, ?2, ?3, ?4, ?5, ?6 FROM webhook_subscriptions
	WHERE disabled_at IS NULL AND instr(event_types, ' ' || ?2 || ' ') > 0`

// queueJournalEvent queues the event a journal entry makes, if its action
// makes one and a subscription takes it.
func (tx *Tx) queueJournalEvent(ctx context.Context, entryID int64, actor, action string, buildingID int64, objectType string, objectID int64, detail string) error {
	ev, ok := doorledger.NewJournalEvent(entryID, actor, action, buildingID, objectType, objectID, detail)
	if !ok {
		return nil
	}
	return tx.queueEvent(ctx, ev)
}

// queueEvent queues ev (its ID and CreatedAt set here) for every active
// subscription to its type, in tx. With no such subscription it costs one
// prepared query.
func (tx *Tx) queueEvent(ctx context.Context, ev *doorledger.Event) error {
	var subscribed bool
	if err := tx.queryRowPrepared(ctx, queueEventExistsSQL, ev.Type).Scan(&subscribed); err != nil {
		return fmt.Errorf("queue event %s: %w", ev.Type, err)
	}
	if !subscribed {
		return nil
	}
	id, err := doorledger.NewEventID()
	if err != nil {
		return err
	}
	ev.ID = id
	ev.CreatedAt = tx.now.UTC()
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("queue event %s: %w", ev.Type, err)
	}
	if _, err := tx.exec(ctx, queueEventSQL, ev.ID, ev.Type, ev.BuildingID, formatTime(tx.now), string(payload),
		formatTime(tx.now.Add(doorledger.WebhookRetryWindow))); err != nil {
		return fmt.Errorf("queue event %s: %w", ev.Type, err)
	}
	tx.hooked = true
	return nil
}

// queueAnomaly queues the event of an anomalous unlock event just recorded.
func (tx *Tx) queueAnomaly(ctx context.Context, ev *doorledger.UnlockEvent) error {
	e, err := doorledger.NewAnomalyEvent(ev)
	if err != nil {
		return err
	}
	return tx.queueEvent(ctx, e)
}

const subscriptionColumns = `id, name, url, event_types, secret_fp, created_at, created_by, disabled_at`

func scanSubscription(row interface{ Scan(...any) error }) (*doorledger.WebhookSubscription, error) {
	var s doorledger.WebhookSubscription
	var types string
	if err := row.Scan(&s.ID, &s.Name, &s.URL, &types, &s.SecretFingerprint, nullTime{&s.CreatedAt}, &s.CreatedBy, nullTime{&s.DisabledAt}); err != nil {
		return nil, err
	}
	s.EventTypes = strings.Fields(types)
	return &s, nil
}

func (s *WebhookService) FindWebhookSubscriptions(ctx context.Context) ([]*doorledger.WebhookSubscription, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db.read, scanSubscription,
		`SELECT `+subscriptionColumns+` FROM webhook_subscriptions ORDER BY disabled_at IS NOT NULL, name COLLATE NOCASE, id`)
}

func (s *WebhookService) CreateWebhookSubscription(ctx context.Context, in doorledger.WebhookSubscriptionInput) (*doorledger.WebhookSubscription, string, error) {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return nil, "", err
	}
	if err := in.Validate(); err != nil {
		return nil, "", err
	}
	secret, fp, err := doorledger.NewWebhookSecret()
	if err != nil {
		return nil, "", err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback()
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO webhook_subscriptions (name, url, event_types, secret_fp, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		in.Name, in.URL, " "+strings.Join(in.EventTypes, " ")+" ", fp, formatTime(tx.now), c.label()).Scan(&id); err != nil {
		return nil, "", fmt.Errorf("create webhook subscription: %w", err)
	}
	sealed, err := s.db.sealer.Seal([]byte(secret), seal.WebhookSecret(id))
	if err != nil {
		return nil, "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_subscriptions SET secret_sealed = ? WHERE id = ?`, sealed, id); err != nil {
		return nil, "", err
	}
	if err := tx.audit(ctx, "webhook.subscribe", 0, "webhook_subscription", id, map[string]any{
		"name": in.Name, "url": in.URL, "event_types": in.EventTypes, "secret": fp}); err != nil {
		return nil, "", err
	}
	sub, err := scanSubscription(tx.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE id = ?`, id))
	if err != nil {
		return nil, "", err
	}
	if err := tx.Commit(); err != nil {
		return nil, "", err
	}
	return sub, secret, nil
}

func (s *WebhookService) DisableWebhookSubscription(ctx context.Context, id int64) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	sub, err := scanSubscription(tx.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE id = ?`, id))
	if err != nil {
		return notFound(err, "Subscription not found.")
	}
	if !sub.Active() {
		return doorledger.Errorf(doorledger.ECONFLICT, "This subscription is disabled already.")
	}
	now := formatTime(tx.now)
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_subscriptions SET disabled_at = ? WHERE id = ?`, now, id); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET failed_at = ?, last_error = 'Not sent: the subscription was disabled.'
		WHERE subscription_id = ? AND delivered_at IS NULL AND failed_at IS NULL`, now, id)
	if err != nil {
		return err
	}
	dropped, _ := res.RowsAffected()
	if err := tx.audit(ctx, "webhook.disable", 0, "webhook_subscription", id, map[string]any{
		"name": sub.Name, "url": sub.URL, "undelivered": dropped}); err != nil {
		return err
	}
	return tx.Commit()
}

const deliveryColumns = `d.id, d.subscription_id, s.name, s.url, d.event_id, d.event_type, d.building_id, d.created_at, d.payload,
	d.attempts, d.give_up_at, d.next_attempt_at, d.last_attempt_at, d.delivered_at, d.failed_at,
	d.response_status, d.response_excerpt, d.last_error`

func scanDelivery(row interface{ Scan(...any) error }) (*doorledger.WebhookDelivery, error) {
	var d doorledger.WebhookDelivery
	var payload string
	if err := row.Scan(&d.ID, &d.SubscriptionID, &d.SubscriptionName, &d.URL, &d.EventID, &d.EventType, &d.BuildingID,
		nullTime{&d.CreatedAt}, &payload, &d.Attempts, nullTime{&d.GiveUpAt}, nullTime{&d.NextAttemptAt},
		nullTime{&d.LastAttemptAt}, nullTime{&d.DeliveredAt}, nullTime{&d.FailedAt},
		&d.ResponseStatus, &d.ResponseExcerpt, &d.LastError); err != nil {
		return nil, err
	}
	d.Payload = []byte(payload)
	return &d, nil
}

// deliveryStateWhere is the condition on d selecting a delivery state.
var deliveryStateWhere = map[string]string{
	doorledger.DeliveryPending:   `d.delivered_at IS NULL AND d.failed_at IS NULL AND d.attempts = 0`,
	doorledger.DeliveryRetrying:  `d.delivered_at IS NULL AND d.failed_at IS NULL AND d.attempts > 0`,
	doorledger.DeliveryDelivered: `d.delivered_at IS NOT NULL`,
	doorledger.DeliveryFailed:    `d.delivered_at IS NULL AND d.failed_at IS NOT NULL`,
}

func (s *WebhookService) FindWebhookDeliveries(ctx context.Context, f doorledger.WebhookDeliveryFilter) ([]*doorledger.WebhookDelivery, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	var where []string
	var args []any
	if f.SubscriptionID != 0 {
		where, args = append(where, `d.subscription_id = ?`), append(args, f.SubscriptionID)
	}
	if f.State != "" {
		cond, ok := deliveryStateWhere[f.State]
		if !ok {
			return nil, doorledger.Errorf(doorledger.EINVALID, "Unknown delivery state %q.", f.State)
		}
		where = append(where, cond)
	}
	query := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY d.id DESC LIMIT ?`
	return queryAll(ctx, s.db.read, scanDelivery, query, append(args, f.Limit)...)
}

func (s *WebhookService) ReplayWebhookDelivery(ctx context.Context, id int64) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	d, err := scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryColumns+`
		FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id WHERE d.id = ?`, id))
	if err != nil {
		return notFound(err, "Delivery not found.")
	}
	var disabled sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT disabled_at FROM webhook_subscriptions WHERE id = ?`, d.SubscriptionID).Scan(&disabled); err != nil {
		return err
	}
	if disabled.Valid {
		return doorledger.Errorf(doorledger.ECONFLICT, "Its subscription is disabled: nothing is sent to it any more.")
	}
	// The delivery starts over: due now, another retry window, the same
	// event id and body. Its last response stays until the next attempt.
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = 0, delivered_at = NULL, failed_at = NULL,
		next_attempt_at = NULL, give_up_at = ? WHERE id = ?`, formatTime(tx.now.Add(doorledger.WebhookRetryWindow)), id); err != nil {
		return fmt.Errorf("replay delivery %d: %w", id, err)
	}
	if err := tx.audit(ctx, "webhook.replay", d.BuildingID, "webhook_delivery", id, map[string]any{
		"subscription": d.SubscriptionID, "event_id": d.EventID, "event_type": d.EventType, "was": d.State()}); err != nil {
		return err
	}
	tx.hooked = true
	return tx.Commit()
}

func (s *WebhookService) PendingWebhookDeliveries(ctx context.Context, limit int) ([]*doorledger.WebhookDelivery, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+deliveryColumns+`, s.secret_sealed
		FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
		WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)
			AND s.disabled_at IS NULL
		ORDER BY d.next_attempt_at IS NOT NULL, d.next_attempt_at, d.id LIMIT ?`, formatTime(s.db.now()), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*doorledger.WebhookDelivery
	var sealed [][]byte
	for rows.Next() {
		var seal []byte
		d, err := scanDelivery(scanFunc(func(dest ...any) error { return rows.Scan(append(dest, &seal)...) }))
		if err != nil {
			return nil, err
		}
		list, sealed = append(list, d), append(sealed, seal)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	due := list[:0]
	for i, d := range list {
		secret, err := s.db.sealer.Open(sealed[i], seal.WebhookSecret(d.SubscriptionID))
		if err != nil {
			// Another data directory's key: it can never be signed here.
			if _, uerr := s.db.write.ExecContext(ctx, `UPDATE webhook_deliveries SET failed_at = ?, last_error = ? WHERE id = ?`,
				formatTime(s.db.now()), "Not sent: the subscription's secret "+seal.ErrSealedElsewhere.Error()+".", d.ID); uerr != nil {
				return nil, errors.Join(err, uerr)
			}
			continue
		}
		d.Secret = secret
		due = append(due, d)
	}
	return due, nil
}

// scanFunc adapts a function to the Scan interface.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

func (s *WebhookService) RecordWebhookAttempt(ctx context.Context, id int64, a doorledger.WebhookAttempt, retryAfter time.Duration) (string, error) {
	a = a.Cut()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	var giveUp string
	var delivered, failed sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT give_up_at, delivered_at, failed_at FROM webhook_deliveries WHERE id = ?`, id).Scan(&giveUp, &delivered, &failed); err != nil {
		return "", notFound(err, "Delivery not found.")
	}
	now := formatTime(tx.now)
	state := doorledger.DeliveryDelivered
	switch {
	case delivered.Valid || failed.Valid:
		// Replayed, disabled or delivered meanwhile: the attempt is kept as the
		// last response, the state as it is.
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET last_attempt_at = ?, response_status = ?, response_excerpt = ?, last_error = ? WHERE id = ?`,
			now, a.Status, a.Excerpt, a.Err, id)
		state = doorledger.DeliveryFailed
		if delivered.Valid {
			state = doorledger.DeliveryDelivered
		}
	case a.OK():
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?, delivered_at = ?,
			next_attempt_at = NULL, response_status = ?, response_excerpt = ?, last_error = '' WHERE id = ?`, now, now, a.Status, a.Excerpt, id)
	case now >= giveUp:
		state = doorledger.DeliveryFailed
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?, failed_at = ?,
			next_attempt_at = NULL, response_status = ?, response_excerpt = ?, last_error = ? WHERE id = ?`, now, now, a.Status, a.Excerpt, a.Err, id)
	default:
		state = doorledger.DeliveryRetrying
		next := formatTime(tx.now.Add(max(retryAfter, 0)))
		next = min(next, giveUp) // the last attempt is made when the window ends
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?, next_attempt_at = ?,
			response_status = ?, response_excerpt = ?, last_error = ? WHERE id = ?`, now, next, a.Status, a.Excerpt, a.Err, id)
	}
	if err != nil {
		return "", fmt.Errorf("record attempt of delivery %d: %w", id, err)
	}
	return state, tx.Commit()
}

func (s *WebhookService) PruneWebhookDeliveries(ctx context.Context, keep time.Duration) (int64, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM webhook_deliveries
		WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < ?`, formatTime(s.db.now().Add(-keep)))
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return res.RowsAffected()
}
