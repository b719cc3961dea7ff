package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

// subscriberCond is true for a subscription s of a user u who still may
// receive the building's report: an enabled admin, or an enabled manager or
// board member with a grant on it.
const subscriberCond = `u.id = s.user_id AND u.disabled = 0 AND (u.role = 'admin' OR (u.role IN ('manager', 'board')
	AND EXISTS (SELECT 1 FROM grants g WHERE g.building_id = s.building_id AND g.user_id = s.user_id)))`

// mailSubscribers queues, in tx, one mail per subscriber of the building
// with the monthly report's link and hash.
func (s *ReportService) mailSubscribers(ctx context.Context, tx *Tx, r *doorledger.ReportRecord) error {
	to, err := queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (string, error) {
		var addr string
		return addr, row.Scan(&addr)
	}, `SELECT u.email FROM report_subscriptions s JOIN users u ON `+subscriberCond+` WHERE s.building_id = ? ORDER BY u.id`, r.BuildingID)
	if err != nil {
		return err
	}
	subject, body := notice.ReportReadyMail(r, s.BaseURL)
	for _, addr := range to {
		if err := tx.queueMail(ctx, &doorledger.Message{To: addr, Subject: subject, Body: body, Kind: "report", BuildingID: r.BuildingID},
			"report:"+r.ID+":"+addr); err != nil {
			return err
		}
	}
	return nil
}

// checkSubscriber allows a person who reads the building's reports.
func checkSubscriber(ctx context.Context, q querier, c caller, buildingID int64) error {
	if _, err := checkUnlockRead(ctx, q, c, buildingID); err != nil {
		return err
	}
	if c.user == nil {
		return doorledger.Errorf(doorledger.EFORBIDDEN, "Only a person can subscribe to a report.")
	}
	return nil
}

func (s *ReportService) Subscribe(ctx context.Context, buildingID int64, on bool) error {
	c := callerFrom(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := checkSubscriber(ctx, tx, c, buildingID); err != nil {
		return err
	}
	var res sql.Result
	action := "report.subscribe"
	if on {
		res, err = tx.ExecContext(ctx, `INSERT INTO report_subscriptions (user_id, building_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			c.user.ID, buildingID, formatTime(tx.now))
	} else {
		action = "report.unsubscribe"
		res, err = tx.ExecContext(ctx, `DELETE FROM report_subscriptions WHERE user_id = ? AND building_id = ?`, c.user.ID, buildingID)
	}
	if err != nil {
		return fmt.Errorf("subscription: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // as asked already
	}
	if err := tx.audit(ctx, action, buildingID, "user", c.user.ID, map[string]any{"monthly": true}); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *ReportService) Subscribed(ctx context.Context, buildingID int64) (bool, error) {
	c := callerFrom(ctx)
	if err := checkSubscriber(ctx, s.db.read, c, buildingID); err != nil {
		return false, err
	}
	var on bool
	err := s.db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM report_subscriptions WHERE user_id = ? AND building_id = ?)`,
		c.user.ID, buildingID).Scan(&on)
	return on, err
}

// QueueMonthlyReports queues, for every building with a subscriber who may
// still receive it, the PDF of the last calendar month that has ended at now
// in the building's time zone, unless one is registered already (a unique
// index makes that hold across portals too). A month with more unlock events
// than a report holds is registered as failed, with the reason, so that it is
// visible and not retried every hour.
func (s *ReportService) QueueMonthlyReports(ctx context.Context, now time.Time) (int, error) {
	if err := requireGenerator(callerFrom(ctx)); err != nil {
		return 0, err
	}
	type month struct {
		building int64
		from, to string
		events   int64
	}
	type building struct {
		id int64
		tz string
	}
	list, err := queryAll(ctx, s.db.read, func(row interface{ Scan(...any) error }) (building, error) {
		var b building
		return b, row.Scan(&b.id, &b.tz)
	}, `SELECT b.id, b.timezone FROM buildings b WHERE EXISTS (
		SELECT 1 FROM report_subscriptions s JOIN users u ON `+subscriberCond+` WHERE s.building_id = b.id) ORDER BY b.id`)
	if err != nil {
		return 0, fmt.Errorf("monthly reports: %w", err)
	}
	var due []month
	for _, b := range list {
		from, to, start, end := doorledger.ReportMonth(now, location(b.tz))
		m := month{building: b.id, from: from, to: to}
		var exists bool
		if err := s.db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM reports WHERE building_id = ? AND from_date = ? AND monthly = 1)`,
			b.id, m.from).Scan(&exists); err != nil {
			return 0, err
		} else if exists {
			continue
		}
		if m.events, err = countEvents(ctx, s.db.read, b.id, start, end); err != nil {
			return 0, err
		}
		due = append(due, m)
	}
	if len(due) == 0 {
		return 0, nil
	}

	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	queued := 0
	for _, m := range due {
		r := &doorledger.ReportRecord{BuildingID: m.building, Format: doorledger.ReportPDF, From: m.from, To: m.to, Monthly: true,
			RequestedName: "system", RequestedAt: tx.now, Status: doorledger.ReportQueued, Total: m.events}
		if err := doorledger.CheckReportEvents(m.from, m.to, m.events, s.maxEvents()); err != nil {
			r.Status, r.Error = doorledger.ReportFailed, doorledger.ErrorMessage(err)
		}
		if err := tx.insertReport(ctx, r); errors.Is(err, errMonthExists) {
			continue // another portal queued it meanwhile
		} else if err != nil {
			return 0, err
		}
		if err := tx.audit(ctx, "report.request", r.BuildingID, "report", 0, map[string]any{
			"report": r.ID, "format": r.Format, "from": r.From, "to": r.To, "events": m.events, "monthly": true, "status": r.Status}); err != nil {
			return 0, err
		}
		if r.Status == doorledger.ReportQueued {
			queued++
		}
	}
	return queued, tx.Commit()
}
