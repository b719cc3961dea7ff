package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/anomalybits"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/internal/unlockburst"
	"github.com/jackc/pgx/v5"
)

// clockSkewed reports whether the event's device time is too far from the
// time it was received to be trusted.
func clockSkewed(ev *doorledger.UnlockEvent) bool {
	d := ev.OccurredAt.Sub(ev.ReceivedAt)
	return d > doorledger.ClockSkewAhead || (ev.Source != doorledger.SourceCSV && d < -doorledger.ClockSkewBehind)
}

// effectiveAt is doorledger.UnlockEvent.EffectiveAt of an event about to be
// recorded, before its flags are set (the database checks the same time
// from the flags and times it stores: unlock_events.effective_at).
func effectiveAt(ev *doorledger.UnlockEvent) time.Time {
	if clockSkewed(ev) {
		return ev.ReceivedAt
	}
	return ev.OccurredAt
}

// errIngestRaced says a group's event, new when the group looked, was
// recorded meanwhile by a transaction the group did not see (another
// instance's): the group is written again, and finds it a duplicate.
var errIngestRaced = errors.New("unlock ingest: an event was recorded by a concurrent transaction")

// eventKey is an event's idempotency key: the device and its event id, or,
// for a device the portal does not know, the building, the source's
// reference and the event id (the two unique indexes of unlock_events).
type eventKey struct {
	deviceID, buildingID int64
	ref, eventID         string
}

func keyOf(ev *doorledger.UnlockEvent) eventKey {
	if ev.DeviceID != 0 {
		return eventKey{deviceID: ev.DeviceID, eventID: ev.EventID}
	}
	return eventKey{buildingID: ev.BuildingID, ref: ev.DeviceRef, eventID: ev.EventID}
}

// pendingRow is an event to insert, with what was decided about it.
type pendingRow struct {
	ev    *doorledger.UnlockEvent
	flags int64
	res   *doorledger.ImportResult
	// unconsented: the event flagged its device unconsented with this
	// command; the audit entry naming the event follows the insert.
	unconsented *doorledger.Command
}

// write records the accepted requests' events with their anomaly flags and
// acts on what they reveal, then audits the imports. Flags are judged event
// by event in order (a burst count sees the events before it, the group's
// own included); the rows are then written in ONE statement, INSERT …
// SELECT FROM unnest(…) ON CONFLICT DO NOTHING, in a fixed order (building,
// effective time, key) so that two instances' groups take the rows they
// share (an event sent to both, a building's day in unlock_daily) in the
// same order and do not deadlock. Ids are taken in the events' order first,
// as package sqlite's one statement per row takes them.
func (g *ingestGroup) write(reqs []*ingestReq) ([]doorledger.ImportResult, error) {
	results := make([]doorledger.ImportResult, len(reqs))
	existing, err := g.existing(reqs)
	if err != nil {
		return nil, err
	}
	var rows []*pendingRow
	for ri, r := range reqs {
		res := &results[ri]
		res.Events = len(r.events)
		for i := range r.events {
			ev := &r.events[i]
			b := g.buildings[ev.BuildingID]
			d := g.devices[ev.DeviceID] // nil: unknown device
			if d != nil && ev.Source != doorledger.SourceCSV {
				g.seen[d.id] = true // a repeat is a sign of life too
			}
			k := keyOf(ev)
			if existing[k] {
				res.Duplicates++
				continue
			}
			existing[k] = true // a repeat within the group
			flags, err := g.flags(ev, b, d)
			if err != nil {
				return nil, err
			}
			row := &pendingRow{ev: ev, flags: flags, res: res}
			rows = append(rows, row)
			res.Inserted++
			// Query too keeps the group's own times: its rows are written
			// after every event is judged, so a count in the database does
			// not see them.
			if bc := g.bursts[b.id]; bc != nil && bc.Mode != unlockburst.None && ev.Result == doorledger.UnlockGranted {
				bc.Add(effectiveAt(ev).UnixMicro())
			}
			if flags == 0 {
				continue
			}
			res.Anomalous++
			ev.Anomalies = anomalybits.Kinds(flags)
			if flags&anomalybits.WithoutConsent != 0 && !d.consentActiveAt(g.tx.now) {
				if row.unconsented, err = g.flagUnconsented(d); err != nil {
					return nil, err
				}
			}
			g.alert(b, d, ev, flags, row.unconsented)
		}
	}
	if err := g.insert(rows); err != nil {
		return nil, err
	}
	for _, row := range rows {
		if cmd := row.unconsented; cmd != nil {
			d := g.devices[row.ev.DeviceID]
			if err := g.tx.auditAs(g.ctx, 0, "device "+itoa(d.id), "device.unconsented", d.buildingID, "device", d.id, map[string]any{
				"unlock_event": row.ev.ID, "event_id": row.ev.EventID, "command": cmd.ID}); err != nil {
				return nil, err
			}
		}
		if row.flags != 0 {
			if err := g.tx.queueAnomaly(g.ctx, row.ev); err != nil {
				return nil, err
			}
		}
	}
	for ri, r := range reqs {
		if r.imp == nil {
			continue
		}
		res := results[ri]
		actx := context.WithoutCancel(r.ctx)
		if err := g.tx.audit(actx, "unlocks.import", r.imp.BuildingID, "building", r.imp.BuildingID, map[string]any{
			"file": r.imp.FileName, "sha256": r.imp.SHA256, "events": res.Events, "inserted": res.Inserted,
			"duplicates": res.Duplicates, "anomalous": res.Anomalous}); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// existing returns which of the requests' events are recorded already:
// one query per kind of key, a probe of its unique index per event.
func (g *ingestGroup) existing(reqs []*ingestReq) (map[eventKey]bool, error) {
	var devs []int64
	var devEvents, refs, refEvents []string
	var blds []int64
	for _, r := range reqs {
		for i := range r.events {
			ev := &r.events[i]
			if ev.DeviceID != 0 {
				devs, devEvents = append(devs, ev.DeviceID), append(devEvents, ev.EventID)
			} else {
				blds, refs, refEvents = append(blds, ev.BuildingID), append(refs, ev.DeviceRef), append(refEvents, ev.EventID)
			}
		}
	}
	found := map[eventKey]bool{}
	if len(devs) > 0 {
		rows, err := g.tx.Query(g.ctx, `SELECT k.device_id, k.event_id FROM unnest($1::bigint[], $2::text[]) AS k (device_id, event_id)
			WHERE EXISTS (SELECT 1 FROM unlock_events e WHERE e.device_id = k.device_id AND e.event_id = k.event_id)`, devs, devEvents)
		if err != nil {
			return nil, fmt.Errorf("find recorded events: %w", err)
		}
		var k eventKey
		if _, err := pgx.ForEachRow(rows, []any{&k.deviceID, &k.eventID}, func() error { found[k] = true; return nil }); err != nil {
			return nil, fmt.Errorf("find recorded events: %w", err)
		}
	}
	if len(blds) > 0 {
		rows, err := g.tx.Query(g.ctx, `SELECT k.building_id, k.device_ref, k.event_id FROM unnest($1::bigint[], $2::text[], $3::text[]) AS k (building_id, device_ref, event_id)
			WHERE EXISTS (SELECT 1 FROM unlock_events e WHERE e.device_id IS NULL AND e.building_id = k.building_id
				AND e.device_ref = k.device_ref AND e.event_id = k.event_id)`, blds, refs, refEvents)
		if err != nil {
			return nil, fmt.Errorf("find recorded events: %w", err)
		}
		var k eventKey
		if _, err := pgx.ForEachRow(rows, []any{&k.buildingID, &k.ref, &k.eventID}, func() error { found[k] = true; return nil }); err != nil {
			return nil, fmt.Errorf("find recorded events: %w", err)
		}
	}
	return found, nil
}

// insert writes rows in one statement: ids taken in the rows' order, rows
// written in the order of compareRows. Every row must be new: one recorded
// meanwhile by a transaction this one did not see is errIngestRaced.
func (g *ingestGroup) insert(rows []*pendingRow) error {
	if len(rows) == 0 {
		return nil
	}
	idRows, err := g.tx.Query(g.ctx, `SELECT logged_id('unlock_events_id_seq') FROM generate_series(1, $1)`, len(rows))
	if err != nil {
		return fmt.Errorf("take unlock event ids: %w", err)
	}
	ids, err := pgx.CollectRows(idRows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("take unlock event ids: %w", err)
	}
	slices.Sort(ids)
	for i, row := range rows {
		row.ev.ID = ids[i]
	}
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, compareRows)
	n := len(sorted)
	var (
		id, building, flags          = make([]int64, n), make([]int64, n), make([]int64, n)
		device                       = make([]*int64, n)
		ref, eventID, method, actor  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		result, source               = make([]string, n), make([]string, n)
		occurred, received, effectve = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	)
	for i, row := range sorted {
		ev := row.ev
		id[i], building[i], flags[i] = ev.ID, ev.BuildingID, row.flags
		if ev.DeviceID != 0 {
			device[i] = &ev.DeviceID
		}
		ref[i], eventID[i], method[i], actor[i] = ev.DeviceRef, ev.EventID, ev.Method, ev.ActorRef
		result[i], source[i] = string(ev.Result), ev.Source
		occurred[i], received[i], effectve[i] = ev.OccurredAt, ev.ReceivedAt, ev.OccurredAt
		if row.flags&anomalybits.ClockSkew != 0 {
			effectve[i] = ev.ReceivedAt
		}
	}
	tag, err := g.tx.Exec(g.ctx, `INSERT INTO unlock_events
		(id, building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
			$8::text[], $9::text[], $10::text[], $11::integer[], $12::text[], $13::timestamptz[])
		ON CONFLICT DO NOTHING`,
		id, building, device, ref, eventID, occurred, received, method, actor, result, flags, source, effectve)
	if err != nil {
		return fmt.Errorf("insert unlock events: %w", err)
	}
	if tag.RowsAffected() != int64(n) {
		return errIngestRaced
	}
	return nil
}

// compareRows orders rows by building, effective time and key.
func compareRows(a, b *pendingRow) int {
	ka, kb := keyOf(a.ev), keyOf(b.ev)
	return cmp.Or(cmp.Compare(a.ev.BuildingID, b.ev.BuildingID), a.effective().Compare(b.effective()),
		cmp.Compare(ka.deviceID, kb.deviceID), cmp.Compare(ka.ref, kb.ref), cmp.Compare(ka.eventID, kb.eventID))
}

func (r *pendingRow) effective() time.Time {
	if r.flags&anomalybits.ClockSkew != 0 {
		return r.ev.ReceivedAt
	}
	return r.ev.OccurredAt
}

// flags computes the anomaly flags of an event about to be recorded. Device
// state, consent, delivery hours and bursts are judged at the event's
// effective time (the time received when the device clock is not to be
// trusted), from the cached state when it answers, from the command and
// consent history otherwise.
func (g *ingestGroup) flags(ev *doorledger.UnlockEvent, b *ingestBuilding, d *ingestDevice) (int64, error) {
	var flags int64
	t := ev.OccurredAt
	if clockSkewed(ev) {
		flags |= anomalybits.ClockSkew
		t = ev.ReceivedAt
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
		enabled, err := g.enabledAt(d, t)
		if err != nil {
			return 0, err
		} else if !enabled {
			flags |= anomalybits.AfterRevocation
		}
		consented, err := g.consentedAt(d, t)
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
		n := bc.Count(t.UnixMicro(), b.burstWindow.Microseconds())
		if bc.Mode == unlockburst.Query {
			recorded, err := g.countGranted(b, t.Add(-b.burstWindow), t)
			if err != nil {
				return 0, err
			}
			n += recorded
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
func (g *ingestGroup) enabledAt(d *ingestDevice, t time.Time) (bool, error) {
	if d.retired || d.desiredVer == 0 {
		return false, nil
	}
	if !t.Before(d.desiredSince) {
		return d.desired == doorledger.StateEnabled, nil
	}
	var state string
	err := g.tx.QueryRow(g.ctx, `SELECT state FROM commands WHERE device_id = $1 AND requested_at <= $2 ORDER BY version DESC LIMIT 1`,
		d.id, t).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return state == string(doorledger.StateEnabled), err
}

// consentedAt reports whether a consent of the device's building covered the
// device at t: signed by then, not yet expired, not withdrawn or lapsed by
// then, and never disputed.
func (g *ingestGroup) consentedAt(d *ingestDevice, t time.Time) (bool, error) {
	if d.consentCovers(t) {
		return true, nil
	}
	var ok bool
	err := g.tx.QueryRow(g.ctx, `SELECT EXISTS (SELECT 1 FROM consents c WHERE c.building_id = $1 AND (c.id = $2 OR c.device_id = $3)
		AND c.signed_at <= $4 AND c.expires_at > $4 AND (c.status = 'signed' OR (c.status IN ('withdrawn', 'lapsed') AND c.status_at > $4)))`,
		d.buildingID, d.consentID, d.id, t).Scan(&ok)
	return ok, err
}

// flagUnconsented marks a device that opened the door without an active
// consent: unconsented, and told to disable (unless it was both already, so a
// stream of its events does not make a stream of commands). The audit entry
// naming the event is written once the event has its id (write).
func (g *ingestGroup) flagUnconsented(d *ingestDevice) (*doorledger.Command, error) {
	if d.unconsented && d.desired == doorledger.StateDisabled && d.desiredVer > 0 {
		return nil, nil
	}
	cmd, err := g.tx.setDesiredState(g.ctx, d.id, doorledger.StateDisabled, "opened the door without an active consent")
	if err != nil {
		return nil, err
	}
	if _, err := g.tx.Exec(g.ctx, `UPDATE devices SET unconsented = true WHERE id = $1`, d.id); err != nil {
		return nil, fmt.Errorf("flag device %d: %w", d.id, err)
	}
	d.unconsented, d.desired, d.desiredVer, d.desiredSince = true, cmd.State, cmd.Version, cmd.RequestedAt
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

// finish records that the group's devices were heard from (once per
// seenEvery under load) and queues the alerts.
func (g *ingestGroup) finish() error {
	if len(g.seen) > 0 {
		stale := g.tx.now.Add(-seenEvery)
		var ids []int64
		for id := range g.seen {
			if d := g.devices[id]; d.lastSeen.Before(stale) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			ids = uniqueIDs(ids) // in id order: two groups lock the devices alike
			if _, err := g.tx.Exec(g.ctx, `UPDATE devices SET last_seen_at = $1 WHERE id = ANY ($2)
				AND (last_seen_at IS NULL OR last_seen_at < $1)`, g.tx.now, ids); err != nil {
				return fmt.Errorf("devices seen: %w", err)
			}
			for _, id := range ids {
				g.devices[id].lastSeen = g.tx.now
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
