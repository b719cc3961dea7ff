package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/anomalybits"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/internal/unlockburst"
)

// clockSkewed reports whether the event's device time is too far from the
// time it was received to be trusted.
func clockSkewed(ev *doorledger.UnlockEvent) bool {
	d := ev.OccurredAt.Sub(ev.ReceivedAt)
	return d > doorledger.ClockSkewAhead || (ev.Source != doorledger.SourceCSV && d < -doorledger.ClockSkewBehind)
}

// effectiveAt is doorledger.UnlockEvent.EffectiveAt of an event about to be
// recorded, before its flags are set (the database derives the same time
// from the flags and times it stores: unlock_events.effective_at).
func effectiveAt(ev *doorledger.UnlockEvent) time.Time {
	if clockSkewed(ev) {
		return ev.ReceivedAt
	}
	return ev.OccurredAt
}

const insertUnlockSQL = `INSERT INTO unlock_events
	(building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// write records one accepted request's events with their anomaly flags, in
// order (a burst count sees the events before it), acts on what they reveal,
// and audits an import. One statement per row: a multi-row INSERT needs a
// statement journal (a temp file here) and is slower (docs/benchmarks.md).
func (g *ingestGroup) write(r *ingestReq) (doorledger.ImportResult, error) {
	res := doorledger.ImportResult{Events: len(r.events)}
	insert, err := g.stmt(insertUnlockSQL)
	if err != nil {
		return res, err
	}
	for i := range r.events {
		ev := &r.events[i]
		b := g.buildings[ev.BuildingID]
		d := g.devices[ev.DeviceID] // nil: unknown device
		occurred, received := formatTime(ev.OccurredAt), formatTime(ev.ReceivedAt)
		flags, err := g.flags(ev, occurred, b, d)
		if err != nil {
			return res, err
		}
		effective := occurred
		if flags&anomalybits.ClockSkew != 0 {
			effective = received
		}
		out, err := insert.ExecContext(g.ctx, ev.BuildingID, nullInt(ev.DeviceID), ev.DeviceRef, ev.EventID,
			occurred, received, ev.Method, ev.ActorRef, string(ev.Result), flags, ev.Source, effective)
		if err != nil {
			return res, fmt.Errorf("insert unlock event: %w", err)
		}
		if d != nil && ev.Source != doorledger.SourceCSV {
			g.seen[d.id] = true // a repeat is a sign of life too
		}
		if n, _ := out.RowsAffected(); n == 0 {
			res.Duplicates++
			continue
		}
		res.Inserted++
		ev.ID, _ = out.LastInsertId()
		if bc := g.bursts[b.id]; bc != nil && bc.Mode == unlockburst.Memory && ev.Result == doorledger.UnlockGranted {
			bc.Add(effectiveAt(ev).UnixMicro())
		}
		if flags == 0 {
			continue
		}
		res.Anomalous++
		ev.Anomalies = anomalybits.Kinds(flags)
		var cmd *doorledger.Command
		if flags&anomalybits.WithoutConsent != 0 && !d.consentActiveAt(g.now) {
			if cmd, err = g.flagUnconsented(d, ev); err != nil {
				return res, err
			}
		}
		g.alert(b, d, ev, flags, cmd)
		if err := g.tx.queueAnomaly(g.ctx, ev); err != nil {
			return res, err
		}
	}
	if r.imp != nil {
		actx := context.WithoutCancel(r.ctx)
		if err := g.tx.audit(actx, "unlocks.import", r.imp.BuildingID, "building", r.imp.BuildingID, map[string]any{
			"file": r.imp.FileName, "sha256": r.imp.SHA256, "events": res.Events, "inserted": res.Inserted,
			"duplicates": res.Duplicates, "anomalous": res.Anomalous}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// flags computes the anomaly flags of an event about to be recorded. Device
// state, consent, delivery hours and bursts are judged at the event's
// effective time (the time received when the device clock is not to be
// trusted), from the cached state when it answers, from the command and
// consent history otherwise.
func (g *ingestGroup) flags(ev *doorledger.UnlockEvent, occurred string, b *ingestBuilding, d *ingestDevice) (int64, error) {
	var flags int64
	t, ts := ev.OccurredAt, occurred
	if clockSkewed(ev) {
		flags |= anomalybits.ClockSkew
		t, ts = ev.ReceivedAt, formatTime(ev.ReceivedAt)
	}
	if d == nil {
		flags |= anomalybits.UnknownDevice
	}
	if ev.Result != doorledger.UnlockGranted {
		// A device flagged unconsented (found in a panel, or seen enabled
		// without consent) has no business at the door: an attempt through
		// it is an anomaly even when it refused the courier.
		if d != nil && d.unconsented {
			flags |= anomalybits.WithoutConsent
		}
		return flags, nil
	}
	if d != nil {
		enabled, err := g.enabledAt(d, ts)
		if err != nil {
			return 0, err
		} else if !enabled {
			flags |= anomalybits.AfterRevocation
		}
		consented, err := g.consentedAt(d, ts)
		if err != nil {
			return 0, err
		} else if !consented {
			flags |= anomalybits.WithoutConsent
		}
	}
	if !b.hours.Allows(t, b.loc) {
		flags |= anomalybits.OutsideHours
	}
	if bc := g.bursts[b.id]; bc != nil && bc.Mode != unlockburst.None && flags&anomalybits.ClockSkew == 0 {
		n := 0
		if bc.Mode == unlockburst.Memory {
			n = bc.Count(t.UnixMicro(), b.burstWindow.Microseconds())
		} else {
			var err error
			if n, err = g.countGranted(b, t.Add(-b.burstWindow), t); err != nil {
				return 0, err
			}
		}
		if n+1 > b.burstN {
			flags |= anomalybits.Burst
		}
	}
	return flags, nil
}

// enabledAt reports whether the device's desired state was enabled at t.
// Disabled covers a disable not yet confirmed by the device, and a device
// never enabled.
func (g *ingestGroup) enabledAt(d *ingestDevice, t string) (bool, error) {
	if d.retired || d.desiredVer == 0 {
		return false, nil
	}
	if t >= d.desiredSince {
		return d.desired == doorledger.StateEnabled, nil
	}
	var state string
	err := g.tx.QueryRowContext(g.ctx, `SELECT state FROM commands WHERE device_id = ? AND requested_at <= ? ORDER BY version DESC LIMIT 1`,
		d.id, t).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return state == string(doorledger.StateEnabled), err
}

// consentedAt reports whether a consent of the device's building covered the
// device at t: signed by then, not yet expired, not withdrawn or lapsed by
// then, and never disputed.
func (g *ingestGroup) consentedAt(d *ingestDevice, t string) (bool, error) {
	if d.consentCovers(t) {
		return true, nil
	}
	var n int
	err := g.tx.QueryRowContext(g.ctx, `SELECT COUNT(*) FROM consents c WHERE c.building_id = ?1 AND (c.id = ?2 OR c.device_id = ?3)
		AND c.signed_at <= ?4 AND c.expires_at > ?4 AND (c.status = 'signed' OR (c.status IN ('withdrawn', 'lapsed') AND c.status_at > ?4))`,
		d.buildingID, d.consentID, d.id, t).Scan(&n)
	return n > 0, err
}

// flagUnconsented marks a device that opened the door without an active
// consent: unconsented, and told to disable (unless it was both already, so a
// stream of its events does not make a stream of commands).
func (g *ingestGroup) flagUnconsented(d *ingestDevice, ev *doorledger.UnlockEvent) (*doorledger.Command, error) {
	if d.unconsented && d.desired == doorledger.StateDisabled && d.desiredVer > 0 {
		return nil, nil
	}
	cmd, err := g.tx.setDesiredState(g.ctx, d.id, doorledger.StateDisabled, "opened the door without an active consent")
	if err != nil {
		return nil, err
	}
	if _, err := g.tx.ExecContext(g.ctx, `UPDATE devices SET unconsented = 1 WHERE id = ?`, d.id); err != nil {
		return nil, fmt.Errorf("flag device %d: %w", d.id, err)
	}
	if err := g.tx.auditAs(g.ctx, 0, "device "+itoa(d.id), "device.unconsented", d.buildingID, "device", d.id, map[string]any{
		"unlock_event": ev.ID, "event_id": ev.EventID, "command": cmd.ID}); err != nil {
		return nil, err
	}
	d.unconsented, d.desired, d.desiredVer, d.desiredSince = true, cmd.State, cmd.Version, formatTime(cmd.RequestedAt)
	g.changed = true
	return cmd, nil
}

// alert adds an anomalous event to the group's managers' alerts
// (internal/notice: one per building, device, combination of anomalies and
// hour received).
func (g *ingestGroup) alert(b *ingestBuilding, d *ingestDevice, ev *doorledger.UnlockEvent, flags int64, cmd *doorledger.Command) {
	var dev *notice.UnlockAlertDevice
	if d != nil {
		dev = &notice.UnlockAlertDevice{ID: d.id, Vendor: d.vendor, Model: d.model, Serial: d.serial, Location: d.location}
	}
	g.alerts.Add(notice.UnlockAlertBuilding{ID: b.id, Name: b.name, Loc: b.loc}, dev, ev, flags, clockSkewed(ev), cmd)
}

// devicesSeenSQL marks devices (a JSON array of ids) seen at ?1.
const devicesSeenSQL = `UPDATE devices SET last_seen_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))
	AND (last_seen_at IS NULL OR last_seen_at < ?1)`

// finish records that the group's devices were heard from (once per
// seenEvery under load) and queues the alerts.
func (g *ingestGroup) finish() error {
	if len(g.seen) > 0 {
		stale := formatTime(g.tx.now.Add(-seenEvery))
		var ids []int64
		for id := range g.seen {
			if d := g.devices[id]; d.lastSeen < stale {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			st, err := g.stmt(devicesSeenSQL)
			if err != nil {
				return err
			}
			if _, err := st.ExecContext(g.ctx, g.now, idsJSON(ids)); err != nil {
				return fmt.Errorf("devices seen: %w", err)
			}
			for _, id := range ids {
				g.devices[id].lastSeen = g.now
			}
		}
	}
	for _, a := range g.alerts.All() {
		subject, body := a.Mail(anomalybits.Kinds(a.Flags))
		b := g.buildings[a.Building.ID]
		if err := g.tx.alertManagers(g.ctx, b.id, b.alertBoard, subject, body, a.Key); err != nil {
			return err
		}
	}
	return nil
}
