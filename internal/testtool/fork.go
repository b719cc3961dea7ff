package testtool

import (
	"database/sql"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ForkLog does what an attacker with the database and the log's key can do:
// it replaces the leaf at index with another, recomputes every hash of the
// tree from the leaves and re-signs every head in place with signer, so
// that the log verifies on its own (heads and tree agree) but tells another
// history from index on. Only a party holding an earlier head (a board's
// report, a witness) can tell. The log's triggers are dropped to do it.
func ForkLog(tb testing.TB, db *sql.DB, signer note.Signer, index int64) {
	tb.Helper()
	exec := func(q string, args ...any) {
		tb.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			tb.Fatalf("fork the log: %s: %v", q, err)
		}
	}
	for _, t := range []string{"log_leaves_no_update", "log_hashes_no_update", "log_hashes_no_delete", "log_hashes_next", "log_heads_no_update"} {
		exec(`DROP TRIGGER IF EXISTS ` + t)
	}
	forged := tlog.RecordHash([]byte("forged entry"))
	exec(`UPDATE log_leaves SET hash = ? WHERE idx = ?`, forged[:], index)
	rows, err := db.Query(`SELECT hash FROM log_leaves ORDER BY idx`)
	if err != nil {
		tb.Fatal(err)
	}
	var stored memHashes
	var n int64
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			tb.Fatal(err)
		}
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.Hash(h), stored)
		if err != nil {
			tb.Fatal(err)
		}
		stored = append(stored, hs...)
		n++
	}
	rows.Close()
	exec(`DELETE FROM log_hashes`)
	for i, h := range stored {
		exec(`INSERT INTO log_hashes (idx, hash) VALUES (?, ?)`, i, h[:])
	}
	rows, err = db.Query(`SELECT size FROM log_heads ORDER BY size`)
	if err != nil {
		tb.Fatal(err)
	}
	var sizes []int64
	for rows.Next() {
		var s int64
		rows.Scan(&s)
		sizes = append(sizes, s)
	}
	rows.Close()
	for _, size := range sizes {
		root, err := tlog.TreeHash(size, stored)
		if err != nil {
			tb.Fatal(err)
		}
		signed, err := auditlog.SignHead(signer, size, doorledger.LogHash(root))
		if err != nil {
			tb.Fatal(err)
		}
		exec(`UPDATE log_heads SET root = ?, note = ? WHERE size = ?`, root[:], signed, size)
	}
}

type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}
