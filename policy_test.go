package doorledger_test

import (
	"encoding/json"
	"testing"

	"github.com/doorledger/doorledger"
)

// TestConsentPolicySetDetail: the journal reads a policy's change under
// these keys ("consent_policy.set").
func TestConsentPolicySetDetail(t *testing.T) {
	before := &doorledger.ConsentPolicy{Required: 1, ExpiryDays: 14}
	p := &doorledger.ConsentPolicy{Required: 2, Roles: []string{"President"}, Ordered: true, ReminderDays: []int{2, 5}, ExpiryDays: 9}
	got, err := json.Marshal(p.SetDetail(before))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"after":"` + p.Describe() + `; reminders on days 2 and 5 after the request; it expires after 9 days",` +
		`"before":"` + before.Describe() + `; no reminders after the request; it expires after 14 days",` +
		`"expiry_days":9,"ordered":true,"reminder_days":[2,5],"required":2,"roles":["President"]}`
	if string(got) != want {
		t.Errorf("detail\n%s\nwant\n%s", got, want)
	}
}
