package db_test

import (
	"context"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db"
)

// A signer signs the terms they were shown: if the terms changed since the
// page was opened (here the building was renamed), signing is refused, the
// device stays disabled and the link still works for the new terms.
func TestConsentSignRefusesChangedTerms(t *testing.T) {
	w := newConsentWorld(t)
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-1", w.signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	token := w.lastLink(t, w.signer.Email, "/sign/")
	shown := w.signInput(t, token)
	if _, err := db.NewBuildingService(w.db).UpdateBuilding(as(w.manager), w.A.ID, doorledger.BuildingInput{Name: "Harbor View Towers", Address: "1 Harbor St", Timezone: "America/New_York"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.consents.Sign(context.Background(), token, shown); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("signing terms that changed: %v, want ECONFLICT", err)
	}
	if state, _ := w.device(t, c.DeviceID); state != string(doorledger.StateDisabled) {
		t.Fatalf("device %s after a refused signature", state)
	}
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatalf("signing the terms as they are now: %v", err)
	}
}
