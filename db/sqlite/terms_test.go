package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// A signer signs the terms they were shown. A request's terms are fixed
// when it is made (issue 13: every signer of a request signs the same
// bytes), so renaming the building later changes nothing a signer sees; a
// posted hash of other terms is refused, the device stays disabled and the
// link still works.
func TestConsentSignRefusesChangedTerms(t *testing.T) {
	w := newConsentWorld(t)
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-1", w.signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	token := w.lastLink(t, w.signer.Email, "/sign/")
	shown := w.signInput(t, token)
	if _, err := sqlite.NewBuildingService(w.db).UpdateBuilding(as(w.manager), w.A.ID, doorledger.BuildingInput{Name: "Harbor View Towers", Address: "1 Harbor St", Timezone: "America/New_York"}); err != nil {
		t.Fatal(err)
	}
	if again := w.signInput(t, token); again.TermsSHA256 != shown.TermsSHA256 {
		t.Fatalf("the request's terms changed with the building: %s, then %s", shown.TermsSHA256, again.TermsSHA256)
	}
	other := shown
	other.TermsSHA256 = doorledger.TermsSHA256("other terms")
	if _, err := w.consents.Sign(context.Background(), token, other); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("signing other terms: %v, want ECONFLICT", err)
	}
	if state, _ := w.device(t, c.DeviceID); state != string(doorledger.StateDisabled) {
		t.Fatalf("device %s after a refused signature", state)
	}
	signed, err := w.consents.Sign(context.Background(), token, shown)
	if err != nil {
		t.Fatalf("signing the terms shown: %v", err)
	}
	if got := doorledger.TermsSHA256(signed.Signature.Terms); got != shown.TermsSHA256 || !strings.Contains(signed.Signature.Terms, "Building: Harbor View\n") {
		t.Fatalf("stored terms hash %s, want %s:\n%s", got, shown.TermsSHA256, signed.Signature.Terms)
	}
}
