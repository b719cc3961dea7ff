package sqlite_test

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// attentionWorld is building A with one of each condition of the attention
// list and, beside each, what resolved it (or never was one); building B
// with one device found without consent.
type attentionWorld struct {
	*deviceWorld
	att *sqlite.AttentionService
	// The ids each item of A must point to.
	unconsented, command, offline, awaiting, lapsing, ended, report int64
	anomaly, ackedAnomaly, oldAnomaly                               int64
	awaitingAt                                                      time.Time
}

func (w *attentionWorld) exec(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	res, err := w.d.Writer().Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	id, _ := res.LastInsertId()
	return id
}

func (w *attentionWorld) event(t *testing.T, building, device int64, id string, at time.Time, anomalies int) int64 {
	t.Helper()
	return w.exec(t, `INSERT INTO unlock_events (building_id, device_id, event_id, occurred_at, received_at, effective_at, method, result, anomalies, source)
		VALUES (?, ?, ?, ?, ?, ?, 'keypad', 'granted', ?, 'mqtt')`, building, device, id, dbTime(at), dbTime(at), dbTime(at), anomalies)
}

func newAttentionWorld(t *testing.T) *attentionWorld {
	t.Helper()
	w := &attentionWorld{deviceWorld: newDeviceWorld(t)}
	w.att = sqlite.NewAttentionService(w.d)
	now := *w.now
	A := w.A

	// Devices found without consent: one in service; one retired; one whose
	// consent came since (unconsented cleared).
	found, err := w.svc.RecordFoundDevice(w.ctx(w.mgrA), A, doorledger.DeviceDetails{Vendor: "Ghost", Model: "G1", Serial: "FOUND-1", Location: "boiler room"})
	if err != nil {
		t.Fatal(err)
	}
	w.unconsented = found.ID
	retired := w.device(t, A, nil, 0, "Ghost")
	w.exec(t, `UPDATE devices SET unconsented = 1, retired = 1 WHERE id = ?`, retired)
	consented := w.device(t, A, nil, w.activeConsent(t, A), "Ghost")
	w.exec(t, `UPDATE devices SET unconsented = 0 WHERE id = ?`, consented)

	// Commands: the current one not confirmed; a not-confirmed one
	// superseded by a confirmed one; a retired device's.
	w.command = w.device(t, A, w.inst1, 0, "Cmd")
	w.attentionCommand(t, A, w.command, 1, "not_confirmed", true)
	settled := w.device(t, A, w.inst1, 0, "Cmd")
	w.attentionCommand(t, A, settled, 1, "superseded", false)
	w.attentionCommand(t, A, settled, 2, "confirmed", true)
	gone := w.device(t, A, w.inst1, 0, "Cmd")
	w.attentionCommand(t, A, gone, 1, "not_confirmed", true)
	w.exec(t, `UPDATE devices SET retired = 1 WHERE id = ?`, gone)

	// Offline: the building's heartbeat is an hour. Silent two hours; heard
	// ten minutes ago; silent two hours but not watched (its own 0).
	w.exec(t, `UPDATE buildings SET heartbeat_seconds = 3600 WHERE id = ?`, A)
	w.offline = w.device(t, A, nil, 0, "Beat")
	w.exec(t, `UPDATE devices SET last_seen_at = ? WHERE id = ?`, dbTime(now.Add(-2*time.Hour)), w.offline)
	heard := w.device(t, A, nil, 0, "Beat")
	w.exec(t, `UPDATE devices SET last_seen_at = ? WHERE id = ?`, dbTime(now.Add(-10*time.Minute)), heard)
	unwatched := w.device(t, A, nil, 0, "Beat")
	w.exec(t, `UPDATE devices SET last_seen_at = ?, heartbeat_seconds = 0 WHERE id = ?`, dbTime(now.Add(-2*time.Hour)), unwatched)

	// Anomalies: one open, one acknowledged, one plain event, and one open
	// but four years old (the retention purge deletes it).
	w.anomaly = w.event(t, A, heard, "e-open", now.Add(-time.Minute), 8)
	w.ackedAnomaly = w.event(t, A, heard, "e-acked", now.Add(-time.Minute), 8)
	w.event(t, A, heard, "e-plain", now.Add(-time.Minute), 0)
	w.oldAnomaly = w.event(t, A, heard, "e-old", now.AddDate(-4, 0, 0), 8)
	if _, err := sqlite.NewUnlockService(w.d).AcknowledgeAnomaly(w.ctx(w.mgrA), w.ackedAnomaly, "false alarm"); err != nil {
		t.Fatal(err)
	}

	// Requests: one awaiting for three days; one declined; one expired.
	w.awaitingAt = now.Add(-72 * time.Hour)
	w.awaiting = w.consent(t, A, doorledger.ConsentAwaiting, time.Time{})
	w.exec(t, `UPDATE consents SET requested_at = ? WHERE id = ?`, dbTime(w.awaitingAt), w.awaiting)
	w.consent(t, A, doorledger.ConsentDeclined, time.Time{})
	expired := w.consent(t, A, doorledger.ConsentAwaiting, time.Time{})
	w.exec(t, `UPDATE consents SET expired_at = ? WHERE id = ?`, dbTime(now), expired)

	// Lapsing: in ten days under a device in service; in ten days but its
	// device moved to a renewal; in sixty days.
	w.lapsing = w.consent(t, A, doorledger.ConsentSigned, now.Add(10*24*time.Hour))
	w.device(t, A, nil, w.lapsing, "Lapse")
	// (its device rests on the renewal; nothing rests on the old one)
	w.consent(t, A, doorledger.ConsentSigned, now.Add(10*24*time.Hour))
	w.device(t, A, nil, w.activeConsent(t, A), "Lapse")
	later := w.consent(t, A, doorledger.ConsentSigned, now.Add(60*24*time.Hour))
	w.device(t, A, nil, later, "Lapse")

	// Withdrawn or disputed: yesterday; eight days ago.
	w.ended = w.consent(t, A, doorledger.ConsentDisputed, now.AddDate(1, 0, 0))
	w.exec(t, `INSERT INTO consent_events (consent_id, at, kind, note) VALUES (?, ?, 'disputed', 'not me')`, w.ended, dbTime(now.Add(-24*time.Hour)))
	old := w.consent(t, A, doorledger.ConsentWithdrawn, now.AddDate(1, 0, 0))
	w.exec(t, `INSERT INTO consent_events (consent_id, at, kind, note) VALUES (?, ?, 'withdrawn', '')`, old, dbTime(now.Add(-8*24*time.Hour)))

	// Residents' reports: one open, one resolved.
	w.report = w.exec(t, `INSERT INTO resident_reports (building_id, created_at, location) VALUES (?, ?, 'behind the mailboxes')`, A, dbTime(now.Add(-time.Hour)))
	w.exec(t, `INSERT INTO resident_reports (building_id, created_at, location, outcome, note, resolved_at, resolved_by)
		VALUES (?, ?, 'lobby', 'other', 'it is the intercom', ?, 'mgr')`, A, dbTime(now.Add(-2*time.Hour)), dbTime(now))

	// Building B: a device found without consent.
	if _, err := w.svc.RecordFoundDevice(w.ctx(w.mgrB), w.B, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "FOUND-B", Location: "roof"}); err != nil {
		t.Fatal(err)
	}
	return w
}

// attentionCommand records a command of the device at version with
// status, and makes it the device's current one when current.
func (w *attentionWorld) attentionCommand(t *testing.T, building, device, version int64, status string, current bool) {
	t.Helper()
	w.exec(t, `INSERT INTO commands (device_id, building_id, state, version, requested_by, requested_at, status, confirmed_at)
		VALUES (?, ?, 'disabled', ?, 'test', ?, ?, CASE WHEN ? = 'confirmed' THEN ? END)`,
		device, building, version, dbTime(w.now.Add(-time.Hour)), status, status, dbTime(*w.now))
	if current {
		w.exec(t, `UPDATE devices SET desired_version = ? WHERE id = ?`, version, device)
	}
}

// wantOneOfEach checks that every kind counts one in c, but open anomalies
// two (the old one is open until the purge deletes it).
func wantOneOfEach(t *testing.T, who string, c doorledger.AttentionCounts) {
	t.Helper()
	for _, k := range doorledger.AttentionKinds {
		want := 1
		if k == doorledger.AttentionAnomalies {
			want = 2
		}
		if got := c.Of(k); got != want {
			t.Errorf("%s: %s = %d, want %d", who, k, got, want)
		}
	}
}

func TestAttentionCountsEachCondition(t *testing.T) {
	w := newAttentionWorld(t)
	for _, u := range []*doorledger.User{w.mgrA, w.boardA} {
		got, err := w.att.AttentionCounts(w.ctx(u))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("%s sees counts of %d buildings, want only A: %v", u.Email, len(got), got)
		}
		wantOneOfEach(t, u.Email, got[w.A])
		if c := got[w.A]; !c.OldestAwaiting.Equal(w.awaitingAt) {
			t.Errorf("%s: oldest request waiting since %s, want %s", u.Email, c.OldestAwaiting, w.awaitingAt)
		}
	}
	all, err := w.att.AttentionCounts(w.ctx(w.admin))
	if err != nil {
		t.Fatal(err)
	}
	wantOneOfEach(t, "admin, building A", all[w.A])
	if b := all[w.B]; b.Total() != 1 || b.Of(doorledger.AttentionUnconsented) != 1 {
		t.Errorf("admin, building B: %v, want one device found without consent", b.Counts)
	}
	onlyB, err := w.att.AttentionCounts(w.ctx(w.mgrB))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := onlyB[w.A]; ok || len(onlyB) != 1 {
		t.Errorf("manager of B sees %v, want building B only", onlyB)
	}
	_, err = w.att.AttentionCounts(w.ctx(w.inst1))
	wantCode(t, "installer", err, doorledger.EFORBIDDEN)
	_, err = w.att.Attention(w.ctx(w.inst1), doorledger.AttentionOptions{})
	wantCode(t, "installer", err, doorledger.EFORBIDDEN)
}

func TestAttentionItemsPointWhereResolved(t *testing.T) {
	w := newAttentionWorld(t)
	a, err := w.att.Attention(w.ctx(w.mgrA), doorledger.AttentionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Buildings != 1 || a.Needing != 1 || len(a.Listed) != 1 || a.Listed[0].BuildingID != w.A {
		t.Fatalf("attention of manager A: %d buildings, %d needing, listed %v", a.Buildings, a.Needing, a.Listed)
	}
	if !a.CheckedAt.Equal(*w.now) {
		t.Errorf("checked at %s, want the database's clock %s", a.CheckedAt, *w.now)
	}
	wantOneOfEach(t, "totals", a.Totals)
	b := a.Listed[0]
	want := map[doorledger.AttentionKind]doorledger.AttentionItem{
		doorledger.AttentionUnconsented:    {DeviceID: w.unconsented},
		doorledger.AttentionCommand:        {DeviceID: w.command, Status: "not_confirmed"},
		doorledger.AttentionOffline:        {DeviceID: w.offline, At: w.now.Add(-2 * time.Hour)},
		doorledger.AttentionAnomalies:      {},
		doorledger.AttentionAwaiting:       {ConsentID: w.awaiting, At: w.awaitingAt},
		doorledger.AttentionLapsing:        {ConsentID: w.lapsing, At: w.now.Add(10 * 24 * time.Hour)},
		doorledger.AttentionEnded:          {ConsentID: w.ended, Status: "disputed", At: w.now.Add(-24 * time.Hour)},
		doorledger.AttentionResidentReport: {ReportID: w.report, Label: "behind the mailboxes"},
	}
	for kind, wi := range want {
		items := b.ItemsOf(kind)
		if len(items) != 1 {
			t.Errorf("%s: %d items, want 1: %+v", kind, len(items), items)
			continue
		}
		it := items[0]
		if it.DeviceID != wi.DeviceID || it.ConsentID != wi.ConsentID || it.ReportID != wi.ReportID ||
			(wi.Status != "" && it.Status != wi.Status) || (!wi.At.IsZero() && !it.At.Equal(wi.At)) || (wi.Label != "" && it.Label != wi.Label) {
			t.Errorf("%s: item %+v, want %+v", kind, it, wi)
		}
	}
	if got := b.ItemsOf(doorledger.AttentionUnconsented)[0].Label; got != "Ghost G1, serial FOUND-1, at boiler room" {
		t.Errorf("found device's label %q", got)
	}

	// The admin sees both buildings, A (eight things) before B (one).
	all, err := w.att.Attention(w.ctx(w.admin), doorledger.AttentionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if all.Buildings != 2 || len(all.Listed) != 2 || all.Listed[0].BuildingID != w.A || all.Listed[1].BuildingID != w.B {
		t.Errorf("admin: %d buildings, listed %v, want A then B", all.Buildings, all.Listed)
	}
	cut, err := w.att.Attention(w.ctx(w.admin), doorledger.AttentionOptions{MaxBuildings: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cut.Needing != 2 || len(cut.Listed) != 1 {
		t.Errorf("at most one building: %d needing, %d listed", cut.Needing, len(cut.Listed))
	}
}

// Each condition, resolved as a manager would (or by time), leaves the list.
func TestAttentionResolved(t *testing.T) {
	w := newAttentionWorld(t)
	unlocks := sqlite.NewUnlockService(w.d)
	count := func(kind doorledger.AttentionKind) int {
		t.Helper()
		got, err := w.att.AttentionCounts(w.ctx(w.mgrA))
		if err != nil {
			t.Fatal(err)
		}
		return got[w.A].Of(kind)
	}
	steps := []struct {
		kind    doorledger.AttentionKind
		resolve func()
	}{
		{doorledger.AttentionAnomalies, func() {
			if _, err := unlocks.AcknowledgeAnomaly(w.ctx(w.mgrA), w.anomaly, "courier's account reported"); err != nil {
				t.Fatal(err)
			}
			// The old one is open until the retention purge deletes it.
			if got := count(doorledger.AttentionAnomalies); got != 1 {
				t.Fatalf("after one acknowledgement: %d open, want the old one", got)
			}
			if n, err := unlocks.Purge(sys(), time.Now()); err != nil || n != 1 {
				t.Fatalf("purge: %d deleted, %v; want the old event", n, err)
			}
		}},
		{doorledger.AttentionUnconsented, func() { w.exec(t, `UPDATE devices SET retired = 1 WHERE id = ?`, w.unconsented) }},
		{doorledger.AttentionCommand, func() {
			w.attentionCommand(t, w.A, w.command, 2, "confirmed", true)
			w.exec(t, `UPDATE commands SET status = 'superseded' WHERE device_id = ? AND version = 1`, w.command)
		}},
		{doorledger.AttentionOffline, func() {
			if err := w.svc.DeviceSeen(sys(), w.offline, *w.now); err != nil {
				t.Fatal(err)
			}
		}},
		{doorledger.AttentionAwaiting, func() {
			w.exec(t, `UPDATE consents SET status = 'declined', status_at = ? WHERE id = ?`, dbTime(*w.now), w.awaiting)
		}},
		{doorledger.AttentionLapsing, func() {
			w.exec(t, `UPDATE devices SET consent_id = ? WHERE consent_id = ?`, w.activeConsent(t, w.A), w.lapsing)
		}},
		{doorledger.AttentionResidentReport, func() {
			w.exec(t, `UPDATE resident_reports SET outcome = 'not_delivery', resolved_at = ?, resolved_by = 'mgr', contact = '' WHERE id = ?`, dbTime(*w.now), w.report)
		}},
		// Last: a withdrawal or dispute leaves the list seven days after it
		// (by then the devices of A not heard from are past their heartbeat).
		{doorledger.AttentionEnded, func() {
			a, err := w.att.Attention(w.ctx(w.mgrA), doorledger.AttentionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if a.Totals.Total() != 1 {
				t.Errorf("all but the dispute resolved: %v, want the dispute only", a.Totals.Counts)
			}
			*w.now = w.now.Add(6*24*time.Hour + time.Minute)
		}},
	}
	for _, s := range steps {
		want := 1
		if s.kind == doorledger.AttentionAnomalies {
			want = 2
		}
		if got := count(s.kind); got != want {
			t.Fatalf("%s before: %d, want %d", s.kind, got, want)
		}
		s.resolve()
		if got := count(s.kind); got != 0 {
			t.Errorf("%s resolved: still %d", s.kind, got)
		}
	}
}

// A command the device refused (status 'refused', with refused_at) counts
// like one not confirmed.
func TestAttentionCountsRefusedCommand(t *testing.T) {
	w := newAttentionWorld(t)
	dev := w.device(t, w.A, w.inst1, 0, "Refuser")
	w.exec(t, `INSERT INTO commands (device_id, building_id, state, version, requested_by, requested_at, status, refused_at)
		VALUES (?1, ?2, 'disabled', 1, 'test', ?3, 'refused', ?3)`, dev, w.A, dbTime(*w.now))
	w.exec(t, `UPDATE devices SET desired_version = 1 WHERE id = ?`, dev)
	got, err := w.att.AttentionCounts(w.ctx(w.mgrA))
	if err != nil {
		t.Fatal(err)
	}
	if n := got[w.A].Of(doorledger.AttentionCommand); n != 2 {
		t.Errorf("commands not confirmed or refused: %d, want 2", n)
	}
}

// The devices offline are counted from the time each is offline after, kept
// on the device by triggers (migrations/055): it must follow every write
// that moves it — the device heard from or registered, its own heartbeat,
// its building's — and keep the job's rule exactly, to the microsecond.
func TestAttentionOfflineFollowsHeartbeats(t *testing.T) {
	w := newDeviceWorld(t)
	att := sqlite.NewAttentionService(w.d)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := w.d.Writer().Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	start := *w.now
	offline := func(at time.Time) int {
		t.Helper()
		*w.now = at
		counts, err := att.AttentionCounts(w.ctx(w.mgrA))
		if err != nil {
			t.Fatal(err)
		}
		return counts[w.A].Of(doorledger.AttentionOffline)
	}
	want := func(step string, at time.Time, n int) {
		t.Helper()
		if got := offline(at); got != n {
			t.Errorf("%s: %d offline at %s, want %d", step, got, at.Format(time.RFC3339Nano), n)
		}
	}

	exec(`UPDATE buildings SET heartbeat_seconds = 3600 WHERE id = ?`, w.A)
	dev := w.device(t, w.A, nil, 0, "Beat") // registered at start, never heard from
	want("registered, within the building's hour", start.Add(time.Hour), 0)
	want("registered, past the building's hour", start.Add(time.Hour+time.Microsecond), 1)

	// Heard from at a time with a fraction: offline one hour after it, not
	// a microsecond sooner.
	seen := start.Add(10*time.Minute + 999999*time.Microsecond)
	exec(`UPDATE devices SET last_seen_at = ? WHERE id = ?`, dbTime(seen), dev)
	want("heard from, exactly its hour after", seen.Add(time.Hour), 0)
	want("heard from, past its hour", seen.Add(time.Hour+time.Microsecond), 1)

	exec(`UPDATE buildings SET heartbeat_seconds = 3 * 3600 WHERE id = ?`, w.A)
	want("the building's heartbeat lengthened", seen.Add(2*time.Hour), 0)
	exec(`UPDATE devices SET heartbeat_seconds = 60 WHERE id = ?`, dev)
	want("its own heartbeat of a minute", seen.Add(2*time.Minute), 1)
	exec(`UPDATE buildings SET heartbeat_seconds = 0 WHERE id = ?`, w.A)
	want("its own heartbeat beats the building's 0", seen.Add(2*time.Minute), 1)
	exec(`UPDATE devices SET heartbeat_seconds = 0 WHERE id = ?`, dev)
	want("its own 0: not watched", seen.Add(24*time.Hour), 0)
	exec(`UPDATE devices SET heartbeat_seconds = NULL WHERE id = ?`, dev)
	want("the building's 0: not watched", seen.Add(24*time.Hour), 0)
	exec(`UPDATE buildings SET heartbeat_seconds = 600 WHERE id = ?`, w.A)
	want("the building watched again", seen.Add(11*time.Minute), 1)

	if err := w.svc.DeviceSeen(sys(), dev, seen.Add(11*time.Minute)); err != nil {
		t.Fatal(err)
	}
	want("heard from again", seen.Add(20*time.Minute), 0)
	want("silent again", seen.Add(22*time.Minute), 1)
	exec(`UPDATE devices SET retired = 1 WHERE id = ?`, dev)
	want("retired", seen.Add(22*time.Minute), 0)
}
