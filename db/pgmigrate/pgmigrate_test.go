package pgmigrate_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/pgmigrate"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/internal/pgtest"
	"github.com/jackc/pgx/v5/pgtype"
)

// cluster's template holds db/postgres's migrations.
var cluster = pgtest.Cluster{Template: func(ctx context.Context, url string) error {
	db := postgres.NewDB(url)
	if err := db.Open(ctx); err != nil {
		return err
	}
	return db.Close()
}}

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

// TestPlanNamesEveryDifference: a table or column on one side only stops
// the copy, named, on either side; the SQLite-only tables listed with a
// reason do not.
func TestPlanNamesEveryDifference(t *testing.T) {
	src := map[string][]string{
		"users":           {"id", "email", "totp_secret"},
		"devices":         {"id", "serial"},
		"witnesses":       {"id", "url"},
		"sqlite_sequence": {"name", "seq"},
		"migrations":      {"name", "applied_at"},
	}
	dst := map[string][]pgmigrate.Column{
		"users":      {{Name: "id", PGType: "bigint"}, {Name: "email", PGType: "text"}},
		"devices":    {{Name: "id", PGType: "bigint"}, {Name: "serial", PGType: "text"}, {Name: "tags", PGType: "text"}},
		"leases":     {{Name: "name", PGType: "text"}},
		"migrations": {{Name: "name", PGType: "text"}},
	}
	_, err := pgmigrate.Plan(src, dst)
	if err == nil {
		t.Fatal("schemas that differ were planned")
	}
	for _, want := range []string{
		"tables in the SQLite database but not in PostgreSQL's schema: witnesses",
		"columns in the SQLite database but not in PostgreSQL's schema: users.totp_secret",
		"tables in PostgreSQL's schema but not in the SQLite database: leases",
		"columns in PostgreSQL's schema but not in the SQLite database: devices.tags",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	for _, listed := range []string{"sqlite_sequence", "migrations"} {
		if strings.Contains(err.Error(), listed) {
			t.Errorf("error names %s, listed as SQLite-only bookkeeping:\n%v", listed, err)
		}
	}

	delete(src, "witnesses")
	delete(dst, "leases")
	src["users"] = src["users"][:2]
	dst["devices"] = dst["devices"][:2]
	tables, err := pgmigrate.Plan(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pgmigrate.TableNames(tables), []string{"devices", "users"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tables = %v, want %v", got, want)
	}
}

// TestConvert: each SQLite value becomes the target column's type exactly,
// or is an error; nothing is guessed.
func TestConvert(t *testing.T) {
	at := time.Date(2026, 12, 7, 19, 5, 6, 123456000, time.UTC)
	for _, c := range []struct {
		table, column, pgType string
		notNull               bool
		in                    any
		want                  any
		err                   string
	}{
		{"users", "id", "bigint", true, int64(7), int64(7), ""},
		{"users", "id", "bigint", true, "7", nil, "want an integer"},
		{"users", "disabled", "boolean", true, int64(1), true, ""},
		{"users", "disabled", "boolean", true, int64(0), false, ""},
		{"users", "disabled", "boolean", true, int64(2), nil, "want 0 or 1"},
		{"users", "email", "text", true, "a@b", "a@b", ""},
		{"users", "email", "text", true, int64(3), nil, "want text"},
		{"log_hashes", "hash", "bytea", true, []byte{1, 2}, []byte{1, 2}, ""},
		{"log_hashes", "hash", "bytea", true, "ab", nil, "want a blob"},
		{"users", "created_at", "timestamp with time zone", true, "2026-12-07T19:05:06.123456Z", at, ""},
		{"users", "created_at", "timestamp with time zone", true, "2026-12-07T19:05:06.123Z", at.Truncate(time.Millisecond), ""},
		{"users", "created_at", "timestamp with time zone", true, "", nil, "no time"},
		{"commands", "sent_at", "timestamp with time zone", false, "", nil, ""},
		{"commands", "sent_at", "timestamp with time zone", false, nil, nil, ""},
		{"commands", "sent_at", "timestamp with time zone", false, "yesterday", nil, "want a time"},
		{"reports", "from_date", "date", true, "2026-11-01", pgtype.Date{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Valid: true}, ""},
		{"reports", "from_date", "date", true, "2026-11", nil, "want a date"},
		{"unlock_daily_zones", "counted_until", "timestamp with time zone", true, "9999", pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}, ""},
		{"unlock_daily_zones", "counted_until", "timestamp with time zone", true, "", pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, ""},
		{"unlock_daily_zones", "counted_until", "timestamp with time zone", true, "2026-12-07T19:05:06.123456Z", at, ""},
		{"users", "profile", "jsonb", true, "{}", nil, "no conversion into PostgreSQL's jsonb"},
	} {
		got, err := pgmigrate.Convert(c.table, pgmigrate.Column{Name: c.column, PGType: c.pgType, NotNull: c.notNull}, c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s.%s %T %v: err = %v, want %q", c.table, c.column, c.in, c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s.%s %v: %v", c.table, c.column, c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s.%s %v = %#v, want %#v", c.table, c.column, c.in, got, c.want)
		}
	}
}

// TestEveryTriggerClassified: every user trigger of db/postgres's schema is
// re-checked by a rule or listed as guarding changes only, and every rule's
// query runs on it (an empty database breaks none). A migration that adds a
// trigger fails here until db/pgmigrate/rules.go says how it is re-checked.
func TestEveryTriggerClassified(t *testing.T) {
	ctx := context.Background()
	db := postgres.NewDB(cluster.Database(t))
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	triggers, err := pgmigrate.UserTriggers(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(triggers) < 50 {
		t.Fatalf("only %d triggers found: %v", len(triggers), triggers)
	}
	if u := pgmigrate.Unclassified(triggers); len(u) > 0 {
		t.Errorf("triggers neither re-checked nor guarding changes only: %v", u)
	}
	broken, err := pgmigrate.CheckRules(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(broken) > 0 {
		t.Errorf("an empty database breaks rules: %v", broken)
	}
	if u := pgmigrate.Unclassified(append(triggers, "devices.devices_new_rule")); !reflect.DeepEqual(u, []string{"devices.devices_new_rule"}) {
		t.Errorf("unclassified = %v, want the new trigger", u)
	}
}
