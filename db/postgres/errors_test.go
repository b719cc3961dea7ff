package postgres_test

import (
	"context"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
)

// The classifier tells the server's errors apart by SQLSTATE and constraint
// name, and classify maps them to the root's vocabulary.
func TestErrorClassifier(t *testing.T) {
	d, _ := MustOpenDB(t)
	ctx := context.Background()
	exec := func(sql string) error {
		_, err := d.Pool().Exec(ctx, sql)
		return err
	}
	user := `INSERT INTO users (email, name, role, password_hash, created_at, updated_at) VALUES ('a@example.com', 'A', 'board', 'x', now(), now())`
	if err := exec(user); err != nil {
		t.Fatal(err)
	}
	dup := exec(user)
	if !postgres.IsUniqueOn(dup, "users_email") || postgres.IsUniqueOn(dup, "invitations_token_hash") {
		t.Errorf("duplicate email: %v not told apart as users_email", dup)
	}
	if got := doorledger.ErrorCode(postgres.Classify(dup)); got != doorledger.ECONFLICT {
		t.Errorf("classify(unique) = %s", got)
	}
	fk := exec(`INSERT INTO grants (building_id, user_id, created_at) VALUES (99, 99, now())`)
	if !postgres.IsForeignKeyViolation(fk) || doorledger.ErrorCode(postgres.Classify(fk)) != doorledger.ENOTFOUND {
		t.Errorf("unknown building: %v", fk)
	}
	check := exec(`UPDATE users SET role = 'janitor'`)
	if !postgres.IsCheckViolation(check) || doorledger.ErrorCode(postgres.Classify(check)) != doorledger.EINVALID {
		t.Errorf("bad role: %v", check)
	}
	if err := exec(`INSERT INTO audit_entries (at, actor, action) VALUES (now(), 'x', 'y')`); err != nil {
		t.Fatal(err)
	}
	refused := exec(`DELETE FROM audit_entries`)
	if !postgres.IsRefusal(refused, "audit_entries is append-only") || postgres.IsRefusal(refused, "the log is append-only") || postgres.IsRefusal(dup, "audit_entries is append-only") {
		t.Errorf("refusal: %v not told apart", refused)
	}
	if e := postgres.Classify(refused); doorledger.ErrorCode(e) != doorledger.ECONFLICT || doorledger.ErrorMessage(e) != "audit_entries is append-only" {
		t.Errorf("classify(refusal) = %v", e)
	}
}

// Two transactions that lock the same rows in opposite orders deadlock;
// PostgreSQL aborts one of them, and isRetryable says running it again is
// right.
func TestIsRetryable(t *testing.T) {
	d, _ := MustOpenDB(t)
	ctx := context.Background()
	if _, err := d.Pool().Exec(ctx, `CREATE TABLE retry_test (id int PRIMARY KEY, n int); INSERT INTO retry_test VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	t1, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Rollback(ctx)
	t2, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer t2.Rollback(ctx)
	if _, err := t1.Exec(ctx, `UPDATE retry_test SET n = 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := t2.Exec(ctx, `UPDATE retry_test SET n = 1 WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { _, err := t1.Exec(ctx, `UPDATE retry_test SET n = 2 WHERE id = 2`); errs <- err }()
	go func() { _, err := t2.Exec(ctx, `UPDATE retry_test SET n = 2 WHERE id = 1`); errs <- err }()
	first := <-errs
	if first == nil { // the survivor: the other was aborted, so its lock went
		first = <-errs
	}
	if first == nil || !postgres.IsRetryable(first) {
		t.Errorf("deadlock: %v, want a retryable error", first)
	}
	if postgres.IsRetryable(postgres.Classify(nil)) {
		t.Error("no error is retryable")
	}
}
