package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestTxStatementsPrepared: statements named to BeginTx are prepared on the
// writer and kept across transactions; any other statement a write runs
// through Tx.exec runs prepared too, for its transaction's life.
func TestTxStatementsPrepared(t *testing.T) {
	db := NewDB(filepath.Join(t.TempDir(), "stmt.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if _, err := db.Writer().Exec(`CREATE TABLE s (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	const named, other = `INSERT INTO s (n) VALUES (?)`, `UPDATE s SET n = n + 1 WHERE n = ?`
	for i := range 2 {
		tx, err := db.BeginTx(ctx, named)
		if err != nil {
			t.Fatal(err)
		}
		if db.writeStmts.lookup(named) == nil {
			t.Fatalf("transaction %d: a statement named to BeginTx is not prepared on the writer", i)
		}
		if _, err := tx.exec(ctx, named, i); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.exec(ctx, other, i); err != nil {
			t.Fatal(err)
		}
		if tx.stmts[named] == nil || tx.stmts[other] == nil {
			t.Errorf("transaction %d ran a statement unprepared: %v", i, tx.stmts)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if db.writeStmts.lookup(other) != nil {
			t.Error("a statement not named to BeginTx was kept on the writer")
		}
	}
	if _, err := db.BeginTx(ctx, `SELECT nonsense FROM nowhere`); err == nil {
		t.Error("BeginTx with a statement that does not compile: no error")
	}
	var n int
	if err := db.Reader().QueryRow(`SELECT COUNT(*) FROM s WHERE n IN (1, 2)`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows written = %d, %v; want 2", n, err)
	}
}
