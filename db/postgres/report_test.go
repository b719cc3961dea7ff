package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// newReportWorld is dbtest's report world on PostgreSQL, with the database.
func newReportWorld(t *testing.T) (*dbtest.ReportWorld, *postgres.DB) {
	t.Helper()
	s, d := openServices(t)
	return dbtest.NewReportWorld(t, s, "UTC"), d
}

// TestReportRegistryImmutable goes around the service: the database itself
// refuses to change a finished report's identity, hash, head or counts, or
// to delete any report.
func TestReportRegistryImmutable(t *testing.T) {
	w, d := newReportWorld(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) error {
		_, err := d.Pool().Exec(ctx, sql, args...)
		return err
	}
	today := dbtest.Day(*w.Now, time.UTC, 0)
	done := w.Request(t, w.MgrA, w.A, doorledger.ReportPDF, today, today)
	*w.Now = w.Now.Add(time.Second)
	open := w.Request(t, w.MgrA, w.A, doorledger.ReportPDF, today, today)
	w.Finish(t, done.ID)
	const msg = "a finished report is never changed"
	for _, set := range []string{
		`sha256 = '` + strings.Repeat("f", 64) + `'`, `bytes = bytes + 1`, `head_size = head_size - 1`, `head_root = '\x` + strings.Repeat("00", 32) + `'`,
		`head_note = 'forged'`, `from_date = '2000-01-01'`, `to_date = '2000-01-01'`, `building_id = ` + fmt.Sprint(w.B),
		`status = 'failed'`, `id = 'AR-forged'`, `format = 'csv'`, `requested_name = 'someone'`, `requested_by = 0`,
		`requested_at = requested_at + interval '1 second'`, `done_at = done_at + interval '1 second'`, `monthly = true`,
		`held_anomalies = 1`, `held_open_anomalies = NULL`, `held_consents = 7`, `held_devices = NULL`,
	} {
		wantRefused(t, set, exec(`UPDATE reports SET `+set+` WHERE id = $1`, done.ID), msg)
	}
	// What is not the record (progress) may be written, as by the service.
	if err := exec(`UPDATE reports SET error = '' WHERE id = $1`, done.ID); err != nil {
		t.Errorf("an update that changes nothing of the record: %v", err)
	}
	for _, id := range []string{done.ID, open.ID} {
		wantRefused(t, "delete", exec(`DELETE FROM reports WHERE id = $1`, id), "reports are never deleted from the registry")
	}
	wantRefused(t, "truncate", exec(`TRUNCATE reports CASCADE`), "reports are never deleted from the registry")
	// A report is done only with its file's hash and size; a hash is 64 hex digits.
	if err := exec(`UPDATE reports SET status = 'done', done_at = now() WHERE id = $1`, open.ID); !postgres.IsCheckViolation(err) {
		t.Errorf("done without a hash: %v", err)
	}
	if err := exec(`UPDATE reports SET sha256 = 'not hex' WHERE id = $1`, open.ID); !postgres.IsCheckViolation(err) {
		t.Errorf("malformed hash: %v", err)
	}
	if err := exec(`UPDATE reports SET held_anomalies = 1, held_open_anomalies = 2 WHERE id = $1`, open.ID); !postgres.IsCheckViolation(err) {
		t.Errorf("more open anomalies than anomalies: %v", err)
	}
	var n int
	if err := d.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM reports`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d reports left (%v)", n, err)
	}
}

// TestNextReportOnceAcrossInstances: generators on several instances ask
// for the next report at once; each queued report is claimed by exactly
// one of them, and every one is claimed.
func TestNextReportOnceAcrossInstances(t *testing.T) {
	w, d := newReportWorld(t)
	today := dbtest.Day(*w.Now, time.UTC, 0)
	const reports, instances = 100, 8
	want := map[string]bool{}
	for range reports {
		want[w.Request(t, w.MgrA, w.A, doorledger.ReportCSV, today, today).ID] = true
	}
	var mu sync.Mutex
	claims := map[string]int{}
	var wg sync.WaitGroup
	for i := range instances {
		// Each instance its own pool on the same database.
		other := postgres.NewDB(d.URL)
		other.Now = d.Now
		if err := other.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		svc := postgres.NewReportService(other, nil, dbtest.BaseURL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, err := svc.NextReport(dbtest.Generator())
				if err != nil {
					t.Errorf("instance %d: %v", i, err)
					return
				}
				if r == nil {
					return
				}
				mu.Lock()
				claims[r.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id := range want {
		if claims[id] != 1 {
			t.Errorf("report %s claimed %d times, want once", id, claims[id])
		}
	}
	if len(claims) != reports {
		t.Errorf("%d reports claimed, want %d", len(claims), reports)
	}
}
