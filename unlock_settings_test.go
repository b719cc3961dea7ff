package doorledger_test

import (
	"encoding/json"
	"testing"

	"github.com/doorledger/doorledger"
)

// TestUnlockSettingsChangeDetail: the journal reads the old and new rules
// under these keys (journal.go, "building.unlock_settings").
func TestUnlockSettingsChangeDetail(t *testing.T) {
	hours, err := doorledger.ParseDeliverySchedule("mon-fri 08:00-18:00")
	if err != nil {
		t.Fatal(err)
	}
	old := &doorledger.UnlockSettings{RetentionDays: 365, BurstCount: 5, BurstMinutes: 10}
	next := &doorledger.UnlockSettings{RetentionDays: 400, DeliveryHours: hours, BurstCount: 7, BurstMinutes: 15, AlertBoard: true, HeartbeatSeconds: 7200}
	got, err := json.Marshal(next.ChangeDetail(old))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"new":{"alert_board":true,"burst_count":7,"burst_minutes":15,"delivery_hours":"` + hours.String() + `","heartbeat_seconds":7200,"retention_days":400},` +
		`"old":{"alert_board":false,"burst_count":5,"burst_minutes":10,"delivery_hours":"","heartbeat_seconds":0,"retention_days":365}}`
	if string(got) != want {
		t.Errorf("detail\n%s\nwant\n%s", got, want)
	}
}

func TestCheckDeviceHeartbeat(t *testing.T) {
	for seconds, code := range map[int]string{-1: "", 0: "", 30 * 86400: "", 30*86400 + 1: doorledger.EINVALID} {
		if err := doorledger.CheckDeviceHeartbeat(seconds); doorledger.ErrorCode(err) != code {
			t.Errorf("%d seconds: %v, want %q", seconds, err, code)
		}
	}
}
