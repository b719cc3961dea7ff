package sqlite_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// logWorld is the suite's log world (a building, an admin) with the database
// under it, its log service and the log's key.
type logWorld struct {
	*dbtest.LogWorld
	d   *sqlite.DB
	log *sqlite.LogService
	key *auditlog.Key
}

func newLogWorld(tb testing.TB) *logWorld {
	tb.Helper()
	key := mustLogKey(tb)
	s, d := openServicesWithKey(tb, key)
	return &logWorld{LogWorld: dbtest.NewLogWorld(tb, s), d: d, log: s.Logs.(*sqlite.LogService), key: key}
}

func mustLogKey(tb testing.TB) *auditlog.Key {
	tb.Helper()
	k, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), auditlog.KeyFile), "doorledger-test")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func (w *logWorld) exec(tb testing.TB, query string, args ...any) {
	tb.Helper()
	if _, err := w.d.Writer().Exec(query, args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

// ids returns the ids of a table's rows, in order.
func (w *logWorld) ids(tb testing.TB, table string) []int64 {
	tb.Helper()
	rows, err := w.d.Reader().Query(`SELECT id FROM ` + table + ` ORDER BY id`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		out = append(out, id)
	}
	return out
}

func TestLogSequenceAndVerify(t *testing.T) {
	w := newLogWorld(t)
	w.Audits(t, 10)
	w.RecordUnlocks(t, 25, time.Time{})
	n, err := w.log.Sequence(sys())
	if err != nil {
		t.Fatal(err)
	}
	audits, unlocks := len(w.ids(t, "audit_entries")), len(w.ids(t, "unlock_events"))
	if want := int64(audits + unlocks); n != want {
		t.Fatalf("sequenced %d entries, want %d", n, want)
	}
	head, err := w.log.Head(sys(), 0)
	if err != nil || head.Size != n || !strings.Contains(head.Note, "\n"+fmt.Sprint(n)+"\n") {
		t.Fatalf("first head: %+v %v", head, err)
	}
	// Nothing new: nothing appended, no new head.
	if m, err := w.log.Sequence(sys()); err != nil || m != 0 {
		t.Fatalf("second run appended %d: %v", m, err)
	}
	// New rows are appended at once, but a head is signed once a minute …
	w.Audits(t, 3)
	if m, err := w.log.Sequence(sys()); err != nil || m != 3 {
		t.Fatalf("third run appended %d: %v", m, err)
	}
	if h, _ := w.log.Head(sys(), 0); h.Size != n {
		t.Errorf("head signed within the minute: size %d", h.Size)
	}
	*w.Now = w.Now.Add(time.Minute)
	if _, err := w.log.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	if h, _ := w.log.Head(sys(), 0); h.Size != n+3 {
		t.Errorf("head after a minute: size %d, want %d", h.Size, n+3)
	}
	// … or on demand.
	w.Audits(t, 1)
	if h := w.Sequence(t); h.Size != n+4 {
		t.Errorf("head on demand: size %d, want %d", h.Size, n+4)
	}
	// Entries are in commit order, kinds in the order of the batch.
	if i := w.Index(t, doorledger.LogKindAudit, 1); i != 0 {
		t.Errorf("first audit entry at %d", i)
	}

	v := w.Verify(t)
	if !v.OK() || v.Entries != n+4 || v.Heads != 3 || v.Head.Size != n+4 || v.Pending != 0 || v.VerifierKey != w.key.VerifierKey() {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
	w.Audits(t, 2)
	if v := w.Verify(t); !v.OK() || v.Pending != 2 {
		t.Errorf("verify with 2 rows not yet logged: pending %d, %v", v.Pending, v.Problem)
	}
}

// TestLogVerifyUnsequenced: a row committed more than LogMergeDelay before
// the database's newest row and still not in the log fails verify, naming
// it; a fresh one is only "not yet logged". Judged by the rows' own times:
// verified days later, the same database gives the same answer.
func TestLogVerifyUnsequenced(t *testing.T) {
	w := newLogWorld(t)
	w.Audits(t, 3)
	w.RecordUnlocks(t, 2, time.Time{})
	w.Sequence(t)
	start := *w.Now

	// A fresh row the sequencer has not reached: fine, now and days later.
	w.Audits(t, 1)
	fresh := w.ids(t, "audit_entries")
	stale := fresh[len(fresh)-1]
	for _, later := range []time.Duration{0, 72 * time.Hour} {
		*w.Now = start.Add(later)
		if v := w.Verify(t); !v.OK() || v.Pending != 1 || len(v.Overdue) != 0 {
			t.Fatalf("a fresh row not yet logged, verified %s later: ok %v, pending %d, overdue %v, %v", later, v.OK(), v.Pending, v.Overdue, v.Problem)
		}
	}

	// Rows committed later than it by more than a minute make it overdue: the
	// sequencer should have logged it long before they came.
	*w.Now = start.Add(doorledger.LogMergeDelay + time.Second)
	w.RecordUnlocks(t, 1, time.Time{})
	w.Audits(t, 1)
	v := w.Verify(t)
	if v.OK() || v.Problem.What != doorledger.LogUnsequenced || v.Problem.Kind != doorledger.LogKindAudit || v.Problem.RefID != stale {
		t.Fatalf("an old row not logged: %+v", v.Problem)
	}
	if want := fmt.Sprintf("audit #%d: not sequenced", stale); !strings.HasPrefix(v.Problem.String(), want) || !strings.Contains(v.Problem.String(), "1 rows committed more than 1m0s before the database's newest row") {
		t.Errorf("problem %q, want it to start %q and say why", v.Problem, want)
	}
	if v.Pending != 2 || len(v.Overdue) != 1 || v.Overdue[0].ID != stale || !v.Newest.Equal(*w.Now) {
		t.Errorf("pending %d, overdue %v, newest %s", v.Pending, v.Overdue, v.Newest)
	}
	// The same database, verified days later, says the same.
	*w.Now = w.Now.Add(72 * time.Hour)
	if again := w.Verify(t); again.Problem == nil || again.Problem.String() != v.Problem.String() {
		t.Errorf("verified days later: %v, want %v", again.Problem, v.Problem)
	}
	// A problem in the log itself is named first.
	w.mutateRow(t, "audit_entries", "actor", 1, flipByte)
	if v := w.Verify(t); v.Problem == nil || v.Problem.What != doorledger.LogChanged || len(v.Overdue) != 1 {
		t.Errorf("a changed entry and an overdue row: %+v, overdue %v", v.Problem, v.Overdue)
	}
}

// mutateRow reads one column of a row, changes it with f and writes it
// back, with the table's triggers dropped as an intruder with the file would.
func (w *logWorld) mutateRow(tb testing.TB, table, column string, id int64, f func(string) string) {
	tb.Helper()
	var v string
	if err := w.d.Reader().QueryRow(`SELECT `+column+` FROM `+table+` WHERE id = ?`, id).Scan(&v); err != nil {
		tb.Fatal(err)
	}
	w.dropTriggers(tb, table)
	w.exec(tb, `UPDATE `+table+` SET `+column+` = ? WHERE id = ?`, f(v), id)
}

func (w *logWorld) dropTriggers(tb testing.TB, table string) {
	tb.Helper()
	rows, err := w.d.Reader().Query(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?`, table)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		w.exec(tb, `DROP TRIGGER `+n)
	}
}

// swapRows makes two rows trade every column but their ids.
func (w *logWorld) swapRows(tb testing.TB, table, columns string, a, b int64) {
	tb.Helper()
	w.dropTriggers(tb, table)
	cols := strings.Split(columns, ", ")
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = fmt.Sprintf("%s = (SELECT %s FROM tmp_swap s WHERE s.id = CASE %s.id WHEN ?1 THEN ?2 ELSE ?1 END)", c, c, table)
	}
	w.exec(tb, `CREATE TEMP TABLE tmp_swap AS SELECT * FROM `+table+` WHERE id IN (?, ?)`, a, b)
	// Row by row, out of the way of unique indexes: b steps aside, a takes
	// b's content, b takes a's.
	w.exec(tb, `UPDATE `+table+` SET `+cols[len(cols)-1]+` = 'x' || `+cols[len(cols)-1]+` WHERE id = ?`, b)
	w.exec(tb, `UPDATE `+table+` SET `+strings.Join(set, ", ")+` WHERE id = ?1`, a, b)
	w.exec(tb, `UPDATE `+table+` SET `+strings.Join(set, ", ")+` WHERE id = ?2`, a, b)
	w.exec(tb, `DROP TABLE tmp_swap`)
}

// flipByte changes one byte of s.
func flipByte(s string) string {
	b := []byte(s)
	b[len(b)/2] ^= 0x01
	return string(b)
}

func TestLogVerifyFindsTampering(t *testing.T) {
	const auditCols = "at, actor_id, actor, action, building_id, object_type, object_id, ip, detail"
	const unlockCols = "building_id, device_id, device_ref, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at, event_id"
	for _, c := range []struct {
		name, kind, table string
		tamper            func(t *testing.T, w *logWorld, ids []int64) (id int64)
		want              string // with %d for the entry's position and %d for its row
	}{
		{"flip a byte of an audit entry", doorledger.LogKindAudit, "audit_entries", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.mutateRow(t, "audit_entries", "detail", ids[7], flipByte)
			return ids[7]
		}, "entry %d (audit #%d): changed"},
		{"flip a byte of an unlock event", doorledger.LogKindUnlock, "unlock_events", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.mutateRow(t, "unlock_events", "actor_ref", ids[11], flipByte)
			return ids[11]
		}, "entry %d (unlock #%d): changed"},
		{"move an unlock event by a microsecond", doorledger.LogKindUnlock, "unlock_events", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.mutateRow(t, "unlock_events", "occurred_at", ids[3], func(s string) string { return strings.Replace(s, "000Z", "001Z", 1) })
			return ids[3]
		}, "entry %d (unlock #%d): changed"},
		{"clear an anomaly flag", doorledger.LogKindUnlock, "unlock_events", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.dropTriggers(t, "unlock_events")
			w.exec(t, `UPDATE unlock_events SET anomalies = 0 WHERE id = ?`, ids[5])
			return ids[5]
		}, "entry %d (unlock #%d): changed"},
		{"a text column set to a blob", doorledger.LogKindAudit, "audit_entries", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.dropTriggers(t, "audit_entries")
			w.exec(t, `UPDATE audit_entries SET actor = X'41' WHERE id = ?`, ids[4])
			return ids[4]
		}, "entry %d (audit #%d): changed (actor: []uint8 is not text)"},
		{"delete an audit entry", doorledger.LogKindAudit, "audit_entries", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.dropTriggers(t, "audit_entries")
			w.exec(t, `DELETE FROM audit_entries WHERE id = ?`, ids[9])
			return ids[9]
		}, "entry %d (audit #%d): missing"},
		{"delete an unlock event", doorledger.LogKindUnlock, "unlock_events", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.dropTriggers(t, "unlock_events")
			w.exec(t, `DELETE FROM unlock_events WHERE id = ?`, ids[14])
			return ids[14]
		}, "entry %d (unlock #%d): missing"},
		{"reorder two audit entries", doorledger.LogKindAudit, "audit_entries", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.swapRows(t, "audit_entries", auditCols, ids[6], ids[8])
			return ids[6]
		}, "entries out of order at %d"},
		{"reorder two unlock events", doorledger.LogKindUnlock, "unlock_events", func(t *testing.T, w *logWorld, ids []int64) int64 {
			w.swapRows(t, "unlock_events", unlockCols, ids[12], ids[13])
			return ids[12]
		}, "entries out of order at %d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newLogWorld(t)
			w.Audits(t, 12)
			w.RecordUnlocks(t, 10, time.Time{})
			w.Audits(t, 3)
			w.RecordUnlocks(t, 10, time.Time{})
			w.Sequence(t)
			if v := w.Verify(t); !v.OK() {
				t.Fatalf("before: %v", v.Problem)
			}
			id := c.tamper(t, w, w.ids(t, c.table))
			i := w.Index(t, c.kind, id)
			v := w.Verify(t)
			want := fmt.Sprintf(c.want, i, id)
			if strings.Count(c.want, "%d") == 1 {
				want = fmt.Sprintf(c.want, i)
			}
			if v.OK() {
				t.Fatalf("not found; want %q", want)
			}
			if got := v.Problem.String(); !strings.HasPrefix(got, want) || v.Problem.Index != i {
				t.Errorf("verify: %q (at %d), want %q", got, v.Problem.Index, want)
			}
		})
	}
}

func TestLogRetentionPurge(t *testing.T) {
	w := newLogWorld(t)
	old := w.Now.AddDate(-4, 0, 0)
	w.RecordUnlocks(t, 30, old)
	w.Audits(t, 2)
	w.RecordUnlocks(t, 5, time.Time{})
	w.Sequence(t)
	cutoff := w.Now.AddDate(0, 0, -1095)

	// The purge path: in one transaction, record the ids, then delete them.
	purge := func(ids []int64) *doorledger.LogPurge {
		t.Helper()
		tx, err := w.d.BeginTx(sys())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		p, err := tx.LogUnlockPurge(sys(), w.Building, cutoff, ids)
		if err != nil {
			t.Fatal(err)
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		if _, err := tx.ExecContext(sys(), `DELETE FROM unlock_events WHERE id IN (`+marks+`)`, args...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ids := w.ids(t, "unlock_events")
	// Two purges, the second naming rows not yet logged when it ran.
	first := purge(append(append([]int64{}, ids[0:10]...), ids[12:20]...))
	if first.Count() != 18 || len(first.IDs) != 2 || first.Actor != "test" {
		t.Fatalf("purge record: %+v", first)
	}
	w.RecordUnlocks(t, 3, old.Add(time.Hour))
	late := w.ids(t, "unlock_events")
	late = late[len(late)-3:]
	second := purge(append([]int64{ids[10]}, late...))
	if second.ID != first.ID+1 {
		t.Fatalf("second purge record: %+v", second)
	}
	w.Sequence(t)
	v := w.Verify(t)
	if !v.OK() || v.Purged != 22 {
		t.Fatalf("after purges: purged %d, %v", v.Purged, v.Problem)
	}
	if i := w.Index(t, doorledger.LogKindPurge, second.ID); i <= w.Index(t, doorledger.LogKindUnlock, late[2]) {
		t.Errorf("purge record logged at %d, before the rows it names", i)
	}

	// A row deleted outside a purge (the retention trigger allows it: it is
	// old enough) is found missing, at its place.
	w.exec(t, `DELETE FROM unlock_events WHERE id = ?`, ids[11])
	v = w.Verify(t)
	if i := w.Index(t, doorledger.LogKindUnlock, ids[11]); v.OK() || v.Problem.String() != fmt.Sprintf("entry %d (unlock #%d): missing", i, ids[11]) {
		t.Errorf("row deleted without a purge: %v", v.Problem)
	}

	// A purge record widened afterwards to cover it is not the logged one.
	w.dropTriggers(t, "log_purges")
	w.exec(t, `UPDATE log_purges SET ids = '`+fmt.Sprintf("%d-%d,%d-%d", ids[0], ids[10]+1, ids[12], ids[19])+`' WHERE id = ?`, first.ID)
	v = w.Verify(t)
	if i := w.Index(t, doorledger.LogKindUnlock, ids[0]); v.OK() || v.Problem.Index != i || v.Problem.What != doorledger.LogMissing {
		t.Errorf("widened purge record: %v, want entry %d missing", v.Problem, i)
	}

	// Purging a row that is not logged is refused.
	tx, _ := w.d.BeginTx(sys())
	defer tx.Rollback()
	if _, err := tx.LogUnlockPurge(sys(), w.Building, cutoff, []int64{1 << 40}); err == nil {
		t.Errorf("purge of an unknown row recorded")
	}
}

func TestLogVerifyWithAnotherKey(t *testing.T) {
	w := newLogWorld(t)
	w.Audits(t, 3)
	w.Sequence(t)
	other := mustLogKey(t)
	// The key printed in a report, given on the command line.
	check := sqlite.NewLogService(w.d, nil)
	if err := check.UseVerifierKey(w.key.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	if v, err := check.Verify(sys()); err != nil || !v.OK() {
		t.Fatalf("with the printed key: %v %v", err, v)
	}
	if err := check.UseVerifierKey(other.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	v, err := check.Verify(sys())
	if err != nil {
		t.Fatal(err)
	}
	if v.OK() || v.Problem.What != doorledger.LogBadHead || !strings.Contains(v.Problem.String(), "not signed by doorledger-test+") {
		t.Errorf("with another key: %v", v.Problem)
	}
	if err := check.UseVerifierKey("not a key"); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("bad key: %v", err)
	}
	// A log rewritten and re-signed with another key in the data directory.
	forged := sqlite.NewLogService(w.d, other)
	w.Audits(t, 1)
	if _, err := forged.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	if v := w.Verify(t); v.OK() || v.Problem.What != doorledger.LogBadHead || v.Problem.Size != v.Head.Size {
		t.Errorf("head signed by another key: %v", v.Problem)
	}
}

// TestLogCheckpointsAfterLegacyHeads: a log whose first heads were signed
// before checkpoints ("go.sum database tree", under the key file's name)
// goes on with C2SP checkpoints of its origin, signed by the same key; verify
// checks both, with the log's key and with the key printed back then.
func TestLogCheckpointsAfterLegacyHeads(t *testing.T) {
	w := newLogWorld(t)
	w.Audits(t, 3)
	h := w.Sequence(t)
	// Re-sign the first head as the portal did before checkpoints.
	legacy, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: h.Size, Hash: tlog.Hash(h.Root)}))}, w.key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	w.dropTriggers(t, "log_heads")
	w.exec(t, `UPDATE log_heads SET note = ? WHERE size = ?`, string(legacy), h.Size)

	named, err := w.key.Named("portal.example.org/doorledger-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	logs := sqlite.NewLogService(w.d, named)
	w.Audits(t, 2)
	h2, err := logs.SignHead(sys())
	if err != nil {
		t.Fatal(err)
	}
	if h2.Origin() != "portal.example.org/doorledger-0123456789" || !strings.HasPrefix(h2.Note, "portal.example.org/doorledger-0123456789\n") {
		t.Errorf("new head: origin %q\n%s", h2.Origin(), h2.Note)
	}
	if old, _ := logs.Head(sys(), h.Size); old.Origin() != "" {
		t.Errorf("the legacy head reads as a checkpoint of %q", old.Origin())
	}
	if v, err := logs.Verify(sys()); err != nil || !v.OK() || v.Heads != 2 {
		t.Fatalf("verify with the log's key: %v %+v", err, v)
	}
	// The key printed before checkpoints checks the new heads too.
	if err := logs.UseVerifierKey(w.key.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	if v, err := logs.Verify(sys()); err != nil || !v.OK() || v.Heads != 2 {
		t.Fatalf("verify with the key printed before checkpoints: %v %+v", err, v)
	}
	// A checkpoint of another origin in this log is refused.
	other, _ := w.key.Named("elsewhere.example/log")
	w.Audits(t, 1)
	if _, err := sqlite.NewLogService(w.d, other).SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	if v, err := sqlite.NewLogService(w.d, named).Verify(sys()); err != nil || v.OK() || v.Problem.What != doorledger.LogBadHead || !strings.Contains(v.Problem.Detail, "another log") {
		t.Errorf("a checkpoint of another origin: %v %+v", err, v.Problem)
	}
}

func TestLogProofs(t *testing.T) {
	w := newLogWorld(t)
	w.Audits(t, 5)
	w.RecordUnlocks(t, 6, time.Time{})
	old := w.Sequence(t)
	w.Audits(t, 4)
	w.RecordUnlocks(t, 9, time.Time{})
	cur := w.Sequence(t)

	for _, h := range []*doorledger.LogHead{old, cur} {
		if _, err := auditlog.OpenHead(h.Note, w.key.HeadVerifier()); err != nil {
			t.Fatalf("head of %d: %v", h.Size, err)
		}
	}
	for i := int64(0); i < cur.Size; i++ {
		p, err := w.log.ProveInclusion(sys(), i, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := auditlog.CheckInclusion(p, *cur); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		if i < old.Size {
			p, err := w.log.ProveInclusion(sys(), i, old.Size)
			if err != nil || auditlog.CheckInclusion(p, *old) != nil {
				t.Errorf("entry %d in the old head: %v", i, err)
			}
		}
	}
	// The entry whose inclusion is proved is the row as it is.
	id := w.ids(t, "unlock_events")[2]
	i := w.Index(t, doorledger.LogKindUnlock, id)
	p, _ := w.log.ProveInclusion(sys(), i, cur.Size)
	var ev doorledger.UnlockEvent
	var occurred, received string
	var bits int64
	if err := w.d.Reader().QueryRow(`SELECT id, building_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source
		FROM unlock_events WHERE id = ?`, id).Scan(&ev.ID, &ev.BuildingID, &ev.DeviceRef, &ev.EventID, &occurred, &received, &ev.Method, &ev.ActorRef, &ev.Result, &bits, &ev.Source); err != nil {
		t.Fatal(err)
	}
	ev.OccurredAt, _ = time.Parse(auditlog.TimeLayout, occurred)
	ev.ReceivedAt, _ = time.Parse(auditlog.TimeLayout, received)
	if bits == 4 {
		ev.Anomalies = []string{doorledger.AnomalyUnknownDevice}
	}
	enc, err := auditlog.EncodeUnlock(&ev)
	if err != nil || auditlog.LeafHash(enc) != p.LeafHash {
		t.Errorf("leaf of unlock #%d is not its row's encoding (anomaly bits %d): %v", id, bits, err)
	}
	bad := *p
	bad.LeafHash = auditlog.LeafHash(append(enc, ' '))
	if auditlog.CheckInclusion(&bad, *cur) == nil {
		t.Errorf("a changed entry proved included")
	}

	// A later report only appended to an earlier one.
	c, err := w.log.ProveConsistency(sys(), old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckConsistency(c, *old, *cur); err != nil {
		t.Errorf("consistency: %v", err)
	}
	forged := *old
	forged.Root[0] ^= 1
	if auditlog.CheckConsistency(c, forged, *cur) == nil {
		t.Errorf("consistency with a rewritten old head accepted")
	}
	tampered := *c
	tampered.Hashes = append([]doorledger.LogHash(nil), c.Hashes...)
	tampered.Hashes[len(tampered.Hashes)-1][0] ^= 1
	if auditlog.CheckConsistency(&tampered, *old, *cur) == nil {
		t.Errorf("tampered consistency proof accepted")
	}
	for _, sizes := range [][2]int64{{0, cur.Size}, {cur.Size, old.Size}, {old.Size, cur.Size + 1}} {
		if _, err := w.log.ProveConsistency(sys(), sizes[0], sizes[1]); doorledger.ErrorCode(err) != doorledger.EINVALID {
			t.Errorf("consistency %v: %v", sizes, err)
		}
	}
	if _, err := w.log.ProveInclusion(sys(), cur.Size, cur.Size); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("inclusion past the end: %v", err)
	}
	if _, err := w.log.Head(sys(), old.Size+1); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("head of a size never signed: %v", err)
	}
}

func TestLogTablesAppendOnly(t *testing.T) {
	w := newLogWorld(t)
	w.Audits(t, 2)
	w.Sequence(t)
	for _, stmt := range []string{
		`UPDATE log_leaves SET ref_id = ref_id + 1`,
		`DELETE FROM log_leaves`,
		`UPDATE log_hashes SET hash = zeroblob(32)`,
		`DELETE FROM log_hashes WHERE idx = 0`,
		`UPDATE log_heads SET size = size + 1`,
		`DELETE FROM log_heads`,
		`INSERT INTO log_leaves (idx, kind, ref_id, hash) VALUES (100, 'audit', 100, zeroblob(32))`,
		`INSERT INTO log_hashes (idx, hash) VALUES (1000, zeroblob(32))`,
	} {
		if _, err := w.d.Writer().Exec(stmt); err == nil || !strings.Contains(err.Error(), "log") {
			t.Errorf("%s: %v, want the trigger to refuse", stmt, err)
		}
	}
	if v := w.Verify(t); !v.OK() {
		t.Errorf("after refused changes: %v", v.Problem)
	}
	// The log's own tables altered, triggers dropped: found where.
	w.dropTriggers(t, "log_hashes")
	w.exec(t, `UPDATE log_hashes SET hash = zeroblob(32) WHERE idx = 3`) // the tree hash stored with entry 2
	if v := w.Verify(t); v.OK() || v.Problem.What != doorledger.LogAltered || v.Problem.Index != 2 {
		t.Errorf("tree hash altered: %v", v.Problem)
	}
}

// BenchmarkSequence measures the sequencer's throughput: rows committed by
// writers, appended to the log in batches, in leaves per second.
//
//	go test ./db/sqlite/ -run '^$' -bench Sequence -benchtime 5x
func BenchmarkSequence(b *testing.B) {
	const perRun = 20000
	w := newLogWorld(b)
	w.log.HeadEvery = time.Hour
	var total int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Half audit entries, half unlock events, as writers commit them.
		tx, err := w.d.Writer().Begin()
		if err != nil {
			b.Fatal(err)
		}
		for i := range perRun / 2 {
			if _, err := tx.Exec(`INSERT INTO audit_entries (at, actor_id, actor, action, building_id, object_type, object_id, ip, detail)
				VALUES ('2026-11-02T10:00:00.000000Z', 1, 'admin@example.com', 'device.enable', ?, 'device', ?, '10.0.0.1', '{"version":3}')`, w.Building, i); err != nil {
				b.Fatal(err)
			}
		}
		for range perRun / 2 {
			w.EventsRecorded++
			if _, err := tx.Exec(`INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
				VALUES (?, 'SN-1', ?, '2026-11-02T10:00:00.000000Z', '2026-11-02T10:00:01.000000Z', 'courier_app', 'pkg 1', 'granted', 4, 'mqtt', '2026-11-02T10:00:00.000000Z')`,
				w.Building, fmt.Sprintf("e-%d", w.EventsRecorded)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		*w.Now = w.Now.Add(time.Second)
		b.StartTimer()
		n, err := w.log.Sequence(sys())
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "leaves/s")
}
