package ingest_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/ingest"
)

// The seed corpora are committed under testdata/fuzz/<FuzzName>/ (go test runs
// them as unit tests); fuzz further with, for example,
//
//	go test ./ingest/ -run '^$' -fuzz FuzzDecodeMQTTEvent -fuzztime 60s

// checkRefusal: every refusal is one EINVALID with a message to show.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) == "" {
		t.Fatalf("refusal is not a precise EINVALID: %v", err)
	}
}

// checkEvent: what a decoder accepts, the sink's validation accepts unchanged.
func checkEvent(t *testing.T, ev doorledger.UnlockEvent) {
	t.Helper()
	again := ev
	if again.BuildingID == 0 && again.DeviceID == 0 {
		again.BuildingID = 1
	}
	if err := again.Validate(); err != nil {
		t.Fatalf("accepted event fails validation: %+v: %v", ev, err)
	}
	if again.EventID != ev.EventID || again.Method != ev.Method || again.ActorRef != ev.ActorRef || again.DeviceRef != ev.DeviceRef {
		t.Fatalf("accepted event is not normalized: %+v", ev)
	}
}

// encode writes events as a device would send them.
func encode(t *testing.T, evs []doorledger.UnlockEvent, http bool) []byte {
	t.Helper()
	var list []map[string]any
	for _, ev := range evs {
		m := map[string]any{"event_id": ev.EventID, "occurred_at": ev.OccurredAt.Format(time.RFC3339Nano), "method": ev.Method,
			"actor_ref": ev.ActorRef, "result": ev.Result}
		if http {
			if ev.DeviceID != 0 {
				m["device_id"] = ev.DeviceID
			}
			if ev.DeviceRef != "" {
				m["device"] = ev.DeviceRef
			}
			if ev.BuildingID != 0 {
				m["building_id"] = ev.BuildingID
			}
		}
		list = append(list, m)
	}
	buf, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

func sameEvents(t *testing.T, a, b []doorledger.UnlockEvent) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d events, then %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.OccurredAt.Equal(y.OccurredAt) {
			t.Fatalf("event %d: time %v, then %v", i, x.OccurredAt, y.OccurredAt)
		}
		x.OccurredAt, y.OccurredAt = time.Time{}, time.Time{}
		if fmt.Sprintf("%+v", x) != fmt.Sprintf("%+v", y) {
			t.Fatalf("event %d:\n %+v\nthen\n %+v", i, a[i], b[i])
		}
	}
}

func FuzzDecodeMQTTEvent(f *testing.F) {
	f.Add([]byte(okEvent))
	f.Add([]byte(`[` + okEvent + `,{"event_id":7,"occurred_at":"2026-03-08T18:04:00.5Z","method":"Keypad","result":"denied","device_id":12}]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		evs, err := ingest.DecodeMQTTEvent(12, payload)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(evs) == 0 || len(evs) > ingest.MaxMQTTEvents {
			t.Fatalf("%d events accepted", len(evs))
		}
		for _, ev := range evs {
			if ev.DeviceID != 12 || ev.Source != doorledger.SourceMQTT || ev.BuildingID != 0 || ev.DeviceRef != "" {
				t.Fatalf("event not of the device: %+v", ev)
			}
			checkEvent(t, ev)
		}
		again, err := ingest.DecodeMQTTEvent(12, encode(t, evs, false))
		if err != nil {
			t.Fatalf("re-encoded events refused: %v", err)
		}
		sameEvents(t, evs, again)
	})
}

func FuzzDecodeHTTPBatch(f *testing.F) {
	f.Add([]byte(`{"events":[{"device_id":7,"event_id":"a","occurred_at":"2026-03-08T18:04:00Z","method":"remote","result":"granted"}]}`))
	f.Add([]byte(`[{"device":"SN-1","building_id":3,"event_id":"b","occurred_at":"2026-03-08T18:05:00+01:00","method":"courier app","result":"denied","actor_ref":"x"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ingest.DecodeHTTPBatch(body, 50)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(evs) == 0 || len(evs) > 50 {
			t.Fatalf("%d events accepted", len(evs))
		}
		for _, ev := range evs {
			if ev.Source != doorledger.SourceHTTP {
				t.Fatalf("source %q", ev.Source)
			}
			checkEvent(t, ev)
		}
		again, err := ingest.DecodeHTTPBatch(encode(t, evs, true), 50)
		if err != nil {
			t.Fatalf("re-encoded events refused: %v", err)
		}
		sameEvents(t, evs, again)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("Timestamp,Serial Number,Status,Type,Courier\n2026-03-08 09:15:00,SN-1,Success,Courier App,C-1\n"))
	f.Add([]byte("when;device;outcome\n2026-03-08T14:05:00Z;SN-9;denied\n1741420800;\"SN;2\";ok\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := ingest.CSVMapping{Columns: map[string]int{ingest.FieldOccurredAt: 0, ingest.FieldDevice: 1, ingest.FieldResult: 2}}
		if pv, err := ingest.PreviewCSV(bytes.NewReader(data), 5); err != nil {
			checkRefusal(t, err)
		} else if _, ok := pv.Guess[ingest.FieldOccurredAt]; ok {
			m.Columns = pv.Guess
		}
		imp, err := ingest.ParseCSV(bytes.NewReader(data), m)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(imp.Events) == 0 || len(imp.Events) != len(imp.Lines) {
			t.Fatalf("%d events, %d lines", len(imp.Events), len(imp.Lines))
		}
		for i, ev := range imp.Events {
			if imp.Lines[i] < 2 || i > 0 && imp.Lines[i] <= imp.Lines[i-1] {
				t.Fatalf("lines %v", imp.Lines)
			}
			if ev.Source != doorledger.SourceCSV || ev.BuildingID != 0 {
				t.Fatalf("event %+v", ev)
			}
			checkEvent(t, ev)
		}
		// What was read, written back as plain CSV, reads the same.
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write([]string{"occurred_at", "device", "device_id", "result", "method", "actor_ref", "event_id"})
		for _, ev := range imp.Events {
			id := ""
			if ev.DeviceID != 0 {
				id = strconv.FormatInt(ev.DeviceID, 10)
			}
			w.Write([]string{ev.OccurredAt.UTC().Format(time.RFC3339Nano), ev.DeviceRef, id, string(ev.Result), ev.Method, ev.ActorRef, ev.EventID})
		}
		w.Flush()
		again, err := ingest.ParseCSV(&buf, ingest.CSVMapping{Columns: map[string]int{"occurred_at": 0, "device": 1, "device_id": 2, "result": 3,
			"method": 4, "actor_ref": 5, "event_id": 6}})
		if err != nil {
			t.Fatalf("written back, refused: %v", err)
		}
		sameEvents(t, imp.Events, again.Events)
	})
}
