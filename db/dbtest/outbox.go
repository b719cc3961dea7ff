package dbtest

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var outboxTests = []test{
	{"OutboxRetryMessage", testOutboxRetryMessage},
	{"OutboxFailedMailDueAfterBackoff", testOutboxFailedMailDueAfterBackoff},
}

var inviteLinkRE = regexp.MustCompile(regexp.QuoteMeta(BaseURL+"/invite/") + `([A-Za-z0-9_-]+)`)

// An admin retries an unsent mail from its first attempt; it is journaled.
// (The mail is an invitation: a mail of the services every backend has.)
func testOutboxRetryMessage(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	admin, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "admin@example.com", Name: "Admin", Role: doorledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Invitations.Invite(as(w.Manager), w.A.ID, "new@example.com", "Nia New", "FastKey"); err != nil {
		t.Fatal(err)
	}
	out := w.Outbox
	pending, _ := out.PendingMessages(context.Background(), 8, 10)
	id := pending[0].ID
	for i := range 2 {
		// The second attempt is final (a 5xx, or the budget spent): given up on
		// though it has fewer than 8 attempts.
		if err := out.MarkFailed(context.Background(), id, "550 no such user", i == 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if pending, _ := out.PendingMessages(context.Background(), 8, 10); len(pending) != 0 {
		t.Fatal("a given-up mail is still pending")
	}
	if msgs, _ := out.FindMessages(as(admin), 10); len(msgs) != 1 || msgs[0].FailedAt.IsZero() || msgs[0].Attempts != 2 || msgs[0].LastError != "550 no such user" {
		t.Fatalf("given up: %+v", msgs)
	}
	if err := out.RetryMessage(as(w.Manager), id); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN && doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("a manager retried mail: %v", err)
	}
	woken := false
	w.OnMail(func() { woken = true })
	if err := out.RetryMessage(as(admin), id); err != nil {
		t.Fatal(err)
	}
	pending, _ = out.PendingMessages(context.Background(), 8, 10)
	if len(pending) != 1 || pending[0].Attempts != 0 || !pending[0].FailedAt.IsZero() || !inviteLinkRE.MatchString(pending[0].Body) || !woken {
		t.Fatalf("after retry: %+v (dispatcher woken: %v)", pending, woken)
	}
	entries, _ := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{})
	if e := entries[0]; e.Action != "mail.retry" || e.Actor != "admin@example.com" {
		t.Fatalf("newest journal entry %+v", e)
	}
	if err := out.MarkSent(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := out.RetryMessage(as(admin), id); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("retry of a sent mail: %v", err)
	}
	if err := out.RetryMessage(as(admin), 9999); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("retry of an unknown mail: %v", err)
	}
}

// A failed mail is not pending again until the wait MarkFailed was given has
// passed on the services' clock, and is from then on; stored, not held by a
// dispatcher, so a restarted portal keeps to it. An admin's retry makes a
// mail due at once, even one still waiting.
func testOutboxFailedMailDueAfterBackoff(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	admin, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "admin@example.com", Name: "Admin", Role: doorledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"new@example.com", "other@example.com"} {
		if _, err := w.Invitations.Invite(as(w.Manager), w.A.ID, to, "Nia New", "FastKey"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	due := func() []int64 {
		t.Helper()
		pending, err := w.Outbox.PendingMessages(ctx, 8, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, m := range pending {
			ids = append(ids, m.ID)
		}
		return ids
	}
	ids := due()
	if len(ids) != 2 {
		t.Fatalf("pending before any attempt: %v", ids)
	}
	failed, other := ids[0], ids[1]
	if err := w.Outbox.MarkFailed(ctx, failed, "421 try later", false, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := due(); fmt.Sprint(got) != fmt.Sprint([]int64{other}) {
		t.Fatalf("pending just after a failure: %v, want only %d", got, other)
	}
	*w.Now = w.Now.Add(2*time.Minute - time.Second)
	if got := due(); fmt.Sprint(got) != fmt.Sprint([]int64{other}) {
		t.Fatalf("pending a second before the retry is due: %v, want only %d", got, other)
	}
	*w.Now = w.Now.Add(time.Second)
	pending, err := w.Outbox.PendingMessages(ctx, 8, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].ID != failed || pending[0].Attempts != 1 || pending[0].LastError != "421 try later" {
		t.Fatalf("pending once the retry is due: %+v", pending)
	}

	// Failed again with a longer wait; an admin's retry does not wait for it.
	if err := w.Outbox.MarkFailed(ctx, failed, "421 try later", false, time.Hour); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(time.Minute)
	if got := due(); fmt.Sprint(got) != fmt.Sprint([]int64{other}) {
		t.Fatalf("pending a minute into an hour's wait: %v, want only %d", got, other)
	}
	if err := w.Outbox.RetryMessage(as(admin), failed); err != nil {
		t.Fatal(err)
	}
	if got := due(); fmt.Sprint(got) != fmt.Sprint([]int64{failed, other}) {
		t.Fatalf("pending after an admin's retry: %v, want %d and %d", got, failed, other)
	}
}
