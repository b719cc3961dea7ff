package doorledger_test

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestUnlockFilterPageSize(t *testing.T) {
	for limit, want := range map[int]int{-1: 50, 0: 50, 1: 1, 500: 500, 501: 500} {
		if got := (doorledger.UnlockFilter{Limit: limit}).PageSize(); got != want {
			t.Errorf("PageSize of Limit %d = %d, want %d", limit, got, want)
		}
	}
}

// TestUnlockFilterDates: dates are whole days in the building's zone (the
// last included), across a change of the clocks; every wrong field is named.
func TestUnlockFilterDates(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	from, to, err := doorledger.UnlockFilter{From: "2026-03-07", To: "2026-03-08"}.Dates(ny)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 7, 5, 0, 0, 0, time.UTC); !from.Equal(want) {
		t.Errorf("from %v, want %v", from, want)
	}
	if want := time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC); !to.Equal(want) { // EDT from the 8th
		t.Errorf("to %v, want %v", to, want)
	}
	if from, to, err := (doorledger.UnlockFilter{}).Dates(ny); err != nil || !from.IsZero() || !to.IsZero() {
		t.Errorf("no dates: %v, %v, %v; want an open span", from, to, err)
	}
	for _, tc := range []struct {
		f    doorledger.UnlockFilter
		want map[string]string
	}{
		{doorledger.UnlockFilter{From: "7/3/2026", To: "2026-02-30"}, map[string]string{"from": "Use a date such as 2026-03-08.", "to": "Use a date such as 2026-03-08."}},
		{doorledger.UnlockFilter{From: "2026-03-08", To: "2026-03-07"}, map[string]string{"to": "The end date must not be before the start date."}},
		{doorledger.UnlockFilter{Result: "maybe", Anomaly: "ghost"}, map[string]string{"result": "Choose granted or denied.", "anomaly": "Choose a kind of anomaly from the list."}},
	} {
		_, _, err := tc.f.Dates(ny)
		got := doorledger.ErrorFields(err)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || len(got) != len(tc.want) {
			t.Errorf("%+v: %v %v, want EINVALID %v", tc.f, doorledger.ErrorCode(err), got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%+v: %s: %q, want %q", tc.f, k, got[k], v)
			}
		}
	}
	for _, kind := range doorledger.AnomalyKinds {
		if _, _, err := (doorledger.UnlockFilter{Anomaly: kind, Result: doorledger.UnlockDenied}).Dates(ny); err != nil {
			t.Errorf("anomaly %s: %v", kind, err)
		}
	}
}
