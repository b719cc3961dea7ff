package web_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db"
)

// noticeSlug is building A's current notice slug.
func (f *fixture) noticeSlug(tb testing.TB) string {
	tb.Helper()
	var slug string
	if err := f.db.Reader().QueryRow(`SELECT slug FROM building_notices WHERE building_id = ?`, f.A.ID).Scan(&slug); err != nil {
		tb.Fatal(err)
	}
	return slug
}

var residentSeq int

// residentToken makes a fresh subscriber of building A and returns the token
// of its link with the prefix: the confirmation link, or (once confirmed and
// notified of a change) a notice's unsubscribe link.
func (f *fixture) residentToken(tb testing.TB, prefix string) string {
	tb.Helper()
	residentSeq++
	ctx := context.Background()
	if err := f.residents.Subscribe(ctx, f.noticeSlug(tb), fmt.Sprintf("resident%d@example.net", residentSeq)); err != nil {
		tb.Fatal(err)
	}
	confirm := f.lastToken(tb, doorledger.ResidentConfirmPath)
	if prefix == doorledger.ResidentConfirmPath {
		return confirm
	}
	must(f.residents.ConfirmSubscription(ctx, confirm))(tb)
	must(db.NewDeviceService(f.db).RecordFoundDevice(sys(), f.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: fmt.Sprintf("G-%d", residentSeq), Location: "panel"}))(tb)
	if n := must(f.residents.NotifyResidents(ctx))(tb); n == 0 {
		tb.Fatal("no notice queued")
	}
	return f.lastToken(tb, prefix)
}
