package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestErrorClassifier provokes each kind of refusal on a real database and
// checks that it is told apart by SQLite's result code, not by its text.
func TestErrorClassifier(t *testing.T) {
	ctx := context.Background()
	d := NewDB(filepath.Join(t.TempDir(), "c.db"))
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := d.Writer()
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, a INT, b INT, UNIQUE (a, b))`,
		`CREATE TRIGGER t_no_negative BEFORE INSERT ON t WHEN NEW.a < 0 BEGIN SELECT RAISE(ABORT, 'no negative a'); END`,
		`INSERT INTO t (id, k, a, b) VALUES (1, 'x', 1, 1)`,
	} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string) error { _, err := w.ExecContext(ctx, q); return err }

	dupKey := exec(`INSERT INTO t (id, k, a, b) VALUES (2, 'x', 2, 2)`)
	dupID := exec(`INSERT INTO t (id, k, a, b) VALUES (1, 'y', 3, 3)`)
	dupPair := exec(`INSERT INTO t (id, k, a, b) VALUES (3, 'z', 1, 1)`)
	refused := exec(`INSERT INTO t (id, k, a, b) VALUES (4, 'w', -1, 4)`)
	notNull := exec(`INSERT INTO t (id, k, a, b) VALUES (NULL, NULL, NULL, 'not' || NULL) RETURNING no_such_column`)

	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"unique column is a unique violation", isUniqueViolation(dupKey), true},
		{"primary key is a unique violation", isUniqueViolation(dupID), true},
		{"unique pair is a unique violation", isUniqueViolation(dupPair), true},
		{"trigger refusal is not a unique violation", isUniqueViolation(refused), false},
		{"other error is not a unique violation", isUniqueViolation(notNull), false},
		{"nil is not a unique violation", isUniqueViolation(nil), false},
		{"unique on t.k", isUniqueOn(dupKey, "t.k"), true},
		{"unique on t.k is not on t.id", isUniqueOn(dupKey, "t.id"), false},
		{"primary key on t.id", isUniqueOn(dupID, "t.id"), true},
		{"unique on the pair", isUniqueOn(dupPair, "t.a, t.b"), true},
		{"refusal with its message", isRefusal(refused, "no negative a"), true},
		{"refusal with another message", isRefusal(refused, "something else"), false},
		{"a unique violation is no refusal", isRefusal(dupKey, "UNIQUE"), false},
		{"nil is no refusal", isRefusal(nil, "no negative a"), false},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}
