package dbtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

var logTests = []test{
	{"LogVerifyAccess", testLogVerifyAccess},
	{"LogVerifiesAfterRetentionPurge", testLogVerifiesAfterRetentionPurge},
	{"LogMultiProof", testLogMultiProof},
	{"LogProofRefusals", testLogProofRefusals},
	{"AuditEntriesPage", testAuditEntriesPage},
}

func testLogVerifyAccess(t *testing.T, newServices NewServices) {
	w := NewLogWorld(t, newServices(t))
	w.Sequence(t)
	users := w.Users
	board, _ := users.CreateUser(sys(), doorledger.NewUser{Email: "b@example.com", Name: "B", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	inst, _ := users.CreateUser(sys(), doorledger.NewUser{Email: "i@example.com", Name: "I", Role: doorledger.RoleInstaller, Password: "correct horse battery"})
	as := func(u *doorledger.User) context.Context {
		return doorledger.NewContextWithUser(context.Background(), u)
	}
	if _, err := w.Logs.Verify(as(board)); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("board verifies: %v", err)
	}
	if _, err := w.Logs.Verify(context.Background()); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Errorf("anonymous verifies: %v", err)
	}
	if _, err := w.Logs.Head(as(board), 0); err != nil {
		t.Errorf("board reads the head: %v", err)
	}
	if _, err := w.Logs.ProveConsistency(as(inst), 1, 1); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("installer asks for a proof: %v", err)
	}
	// An admin's verification is audited (and logged in turn).
	v, err := w.Logs.Verify(as(w.Admin))
	if err != nil || !v.OK() {
		t.Fatalf("admin verifies: %v %v", err, v)
	}
	entries, _ := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 1})
	if len(entries) != 1 || entries[0].Action != "log.verify" || entries[0].Actor != w.Admin.Email || !strings.Contains(entries[0].Detail, `"ok":true`) {
		t.Errorf("last audit entry: %+v", entries[0])
	}
}

// The daily retention purge records what it deletes in the log, so the log
// still verifies after it, and the purge is itself an entry.
func testLogVerifiesAfterRetentionPurge(t *testing.T, newServices NewServices) {
	w := NewLogWorld(t, newServices(t))
	old := w.Now.AddDate(-4, 0, 0)
	w.RecordUnlocks(t, 30, old)
	w.RecordUnlocks(t, 5, time.Time{})
	w.Sequence(t)
	n, err := w.Unlocks.Purge(sys(), *w.Now)
	if err != nil || n != 30 {
		t.Fatalf("purge: %d %v, want 30", n, err)
	}
	w.Sequence(t)
	if v := w.Verify(t); !v.OK() || v.Purged != 30 {
		t.Fatalf("verify after purge: %+v", v)
	}
}

// TestLogMultiProof: the leaves of rows, and one proof for many of them,
// which checks against the signed head.
func testLogMultiProof(t *testing.T, newServices NewServices) {
	w := NewLogWorld(t, newServices(t))
	w.Audits(t, 5)
	w.RecordUnlocks(t, 9, time.Time{})
	head := w.Sequence(t)
	ids := w.UnlockIDs(t)
	leaves, err := w.Logs.LogLeaves(sys(), doorledger.LogKindUnlock, append([]int64{1 << 40}, ids...))
	if err != nil || len(leaves) != len(ids) {
		t.Fatalf("leaves: %d for %d rows (and one not logged), %v", len(leaves), len(ids), err)
	}
	var idx []int64
	var hashes []doorledger.LogHash
	for i, l := range leaves {
		if l.RefID != ids[i] || l.Index != w.Index(t, doorledger.LogKindUnlock, ids[i]) {
			t.Errorf("leaf %d: %+v", i, l)
		}
		if i%2 == 0 {
			idx, hashes = append(idx, l.Index), append(hashes, l.Hash)
		}
	}
	p, err := w.Logs.ProveInclusions(sys(), idx, head.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckInclusions(p, hashes, *head); err != nil {
		t.Errorf("the proof does not verify: %v", err)
	}
	for _, bad := range [][]int64{{idx[1], idx[0]}, {head.Size}} {
		if _, err := w.Logs.ProveInclusions(sys(), bad, head.Size); doorledger.ErrorCode(err) != doorledger.EINVALID {
			t.Errorf("indexes %v: %v, want EINVALID", bad, err)
		}
	}
	if _, err := w.Logs.ProveInclusions(sys(), idx, head.Size+100); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("a tree larger than the log: %v", err)
	}
}

// TestLogProofRefusals: what a caller is told when a head, an entry or a
// proof cannot be had, word for word.
func testLogProofRefusals(t *testing.T, newServices NewServices) {
	w := NewLogWorld(t, newServices(t))
	w.Audits(t, 3)
	head := w.Sequence(t)
	n := head.Size
	inst, _ := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "i@example.com", Name: "I", Role: doorledger.RoleInstaller, Password: "correct horse battery"})
	_, err := w.Logs.Head(doorledger.NewContextWithUser(context.Background(), inst), 0)
	for _, c := range []struct {
		what string
		err  error
		code string
		msg  string
	}{
		{"installer", err, doorledger.EFORBIDDEN, "Installers do not see the audit log."},
		{"head of no size", func() error { _, err := w.Logs.Head(sys(), n+5); return err }(), doorledger.ENOTFOUND,
			"No signed head of the audit log of that size."},
		{"entry not logged", func() error { _, err := w.Logs.EntryIndex(sys(), doorledger.LogKindAudit, 1<<40); return err }(), doorledger.ENOTFOUND,
			fmt.Sprintf("audit #%d is not in the audit log (yet).", int64(1<<40))},
		{"inclusion past the size", func() error { _, err := w.Logs.ProveInclusion(sys(), n, n); return err }(), doorledger.EINVALID,
			fmt.Sprintf("Entry %d is not in a log of %d entries (the log has %d).", n, n, n)},
		{"inclusion in a larger log", func() error { _, err := w.Logs.ProveInclusion(sys(), 0, n+1); return err }(), doorledger.EINVALID,
			fmt.Sprintf("Entry 0 is not in a log of %d entries (the log has %d).", n+1, n)},
		{"consistency from none", func() error { _, err := w.Logs.ProveConsistency(sys(), 0, n); return err }(), doorledger.EINVALID,
			fmt.Sprintf("Cannot prove a log of %d entries extends one of 0 (the log has %d).", n, n)},
		{"consistency backwards", func() error { _, err := w.Logs.ProveConsistency(sys(), n, 1); return err }(), doorledger.EINVALID,
			fmt.Sprintf("Cannot prove a log of 1 entries extends one of %d (the log has %d).", n, n)},
		{"inclusions in a larger log", func() error { _, err := w.Logs.ProveInclusions(sys(), []int64{0}, n+1); return err }(), doorledger.EINVALID,
			fmt.Sprintf("Cannot prove entries in a log of %d entries (the log has %d).", n+1, n)},
		{"inclusions descending", func() error { _, err := w.Logs.ProveInclusions(sys(), []int64{1, 0}, n); return err }(), doorledger.EINVALID,
			fmt.Sprintf("Entry 0 is not in a log of %d entries, or the entries are not ascending.", n)},
	} {
		if doorledger.ErrorCode(c.err) != c.code || doorledger.ErrorMessage(c.err) != c.msg {
			t.Errorf("%s: %v, want %s %q", c.what, c.err, c.code, c.msg)
		}
	}
}

// TestAuditEntriesPage: the journal is read newest first, 200 entries
// unless the caller asks for 1 to 500.
func testAuditEntriesPage(t *testing.T, newServices NewServices) {
	w := NewLogWorld(t, newServices(t))
	w.Audits(t, 205)
	all, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 500})
	if err != nil || len(all) < 206 {
		t.Fatalf("500 asked: %d %v, want every entry", len(all), err)
	}
	for limit, want := range map[int]int{-1: 200, 0: 200, 3: 3, 200: 200, 501: 200} {
		got, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: limit})
		if err != nil || len(got) != want || got[0].ID != all[0].ID || got[len(got)-1].ID != all[want-1].ID {
			t.Errorf("limit %d: %d entries %v, want the newest %d", limit, len(got), err, want)
		}
	}
}
