package devicectl_test

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		id    int64
		kind  string
		ok    bool
	}{
		{"doorledger/devices/7/desired", 7, "desired", true},
		{"doorledger/devices/123/events", 123, "events", true},
		{"doorledger/devices/7/reported", 7, "reported", true},
		{"doorledger/devices/07/desired", 0, "", false},
		{"doorledger/devices/-7/desired", 0, "", false},
		{"doorledger/devices/0/desired", 0, "", false},
		{"doorledger/devices/+/desired", 0, "", false},
		{"doorledger/devices/7/desired/x", 0, "", false},
		{"doorledger/devices/7/other", 0, "", false},
		{"doorledger/devices/7", 0, "", false},
		{"other/devices/7/desired", 0, "", false},
	} {
		id, kind, ok := devicectl.ParseTopic(tc.topic)
		if id != tc.id || kind != tc.kind || ok != tc.ok {
			t.Errorf("ParseTopic(%q) = %d, %q, %v; want %d, %q, %v", tc.topic, id, kind, ok, tc.id, tc.kind, tc.ok)
		}
	}
	if got := devicectl.DesiredTopic(7); got != "doorledger/devices/7/desired" {
		t.Errorf("DesiredTopic = %q", got)
	}
}

func TestParseEvents(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	one := `{"event_id":"a","occurred_at":"2026-11-22T08:59:00Z","method":"keypad","result":"denied"}`
	evs, err := devicectl.ParseEvents(7, []byte(one), now)
	if err != nil || len(evs) != 1 {
		t.Fatalf("object: %v %v", evs, err)
	}
	if e := evs[0]; e.DeviceID != 7 || e.EventID != "a" || e.Result != doorledger.UnlockDenied || !e.ReceivedAt.Equal(now) || e.OccurredAt.Hour() != 8 {
		t.Errorf("event %+v", e)
	}
	evs, err = devicectl.ParseEvents(7, []byte(" ["+one+","+one+"]"), now)
	if err != nil || len(evs) != 2 {
		t.Fatalf("array: %v %v", evs, err)
	}
	_, err = devicectl.ParseEvents(7, []byte(`[`+one+`,{"event_id":"b"}]`), now)
	if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) != "Event 1: occurred_at is missing." {
		t.Errorf("err = %v", err)
	}
}

func TestParseReport(t *testing.T) {
	r, err := devicectl.ParseReport(7, []byte(`{"state":"enabled","version":3}`))
	if err != nil || r.DeviceID != 7 || r.Version != 3 {
		t.Errorf("%+v %v", r, err)
	}
	if _, err := devicectl.ParseReport(7, []byte(`{"state":"enabled","version":-1}`)); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("negative version: %v", err)
	}
}
