package ingest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/ingest"
)

const okEvent = `{"event_id": "e-1", "occurred_at": "2026-03-08T14:03:00-04:00", "method": "courier_app", "actor_ref": "pkg-9", "result": "granted"}`

func TestDecodeMQTTEvent(t *testing.T) {
	evs, err := ingest.DecodeMQTTEvent(12, []byte(okEvent))
	if err != nil {
		t.Fatal(err)
	}
	want := doorledger.UnlockEvent{DeviceID: 12, EventID: "e-1", OccurredAt: time.Date(2026, 3, 8, 18, 3, 0, 0, time.UTC),
		Method: "courier_app", ActorRef: "pkg-9", Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}
	if len(evs) != 1 || !evs[0].OccurredAt.Equal(want.OccurredAt) {
		t.Fatalf("got %+v", evs)
	}
	evs[0].OccurredAt = want.OccurredAt
	if fmt.Sprint(evs[0]) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", evs[0], want)
	}
	// An array; integer event ids; unknown fields ignored; the device may name itself.
	evs, err = ingest.DecodeMQTTEvent(12, []byte(`[`+okEvent+`, {"event_id": 42, "occurred_at": "2026-03-08T18:04:00Z", "method": "Keypad",
		"result": "denied", "device_id": 12, "firmware": "1.2"}]`))
	if err != nil || len(evs) != 2 || evs[1].EventID != "42" || evs[1].Method != "keypad" || evs[1].ActorRef != "" {
		t.Fatalf("array: %+v %v", evs, err)
	}
	many := "[" + strings.TrimSuffix(strings.Repeat(okEvent+",", ingest.MaxMQTTEvents+1), ",") + "]"
	for _, tc := range []struct {
		name, payload, msg string
	}{
		{"empty", ``, "body: empty"},
		{"malformed", `{"event_id": "e-1",, }`, "malformed JSON at byte 20: invalid character ',' looking for beginning of object key string"},
		{"truncated", `[` + okEvent, "malformed JSON at byte 132: unexpected end of JSON input"},
		{"not an object", `"hello"`, "payload: must be an event object or an array of them"},
		{"element not an object", `[1]`, "event 0: must be an object"},
		{"empty array", `[]`, "batch: holds no events"},
		{"too many", many, "batch: holds 501 events; at most 500 are allowed"},
		{"missing time", `{"event_id": "e", "method": "keypad", "result": "granted"}`, "event 0: occurred_at: missing"},
		{"bad time", `[` + okEvent + `, {"event_id": "e", "occurred_at": "yesterday", "method": "keypad", "result": "granted"}]`,
			`event 1: occurred_at: "yesterday" is not an RFC 3339 time (such as 2026-03-08T14:03:00Z)`},
		{"time not a string", `{"event_id": "e", "occurred_at": 1741442580, "method": "keypad", "result": "granted"}`, "event 0: occurred_at: must be a string"},
		{"missing event id", `{"occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "granted"}`, "event 0: event_id: missing"},
		{"event id object", `{"event_id": {}, "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "granted"}`, "event 0: event_id: must be a string or an integer"},
		{"bad result", `{"event_id": "e", "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "ok"}`, `event 0: result: must be granted or denied, not "ok"`},
		{"missing result", `{"event_id": "e", "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad"}`, `event 0: result: missing`},
		{"bad method", `{"event_id": "e", "occurred_at": "2026-03-08T18:04:00Z", "method": "key$pad", "result": "granted"}`, `event 0: method: "key$pad" is not a word of letters, digits and underscores`},
		{"another device", `{"event_id": "e", "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "granted", "device_id": 13}`,
			"event 0: device_id: 13, but the message came from device 12"},
		{"repeated field", `{"event_id": "e", "event_id": "f", "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "granted"}`,
			"event 0: event_id: given twice"},
		{"control characters", `{"event_id": "e\u0000", "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "granted"}`,
			"event 0: event_id: contains control characters"},
		{"long actor", `{"event_id": "e", "occurred_at": "2026-03-08T18:04:00Z", "method": "keypad", "result": "granted", "actor_ref": "` + strings.Repeat("x", 300) + `"}`,
			"event 0: actor_ref: longer than 256 bytes"},
	} {
		_, err := ingest.DecodeMQTTEvent(12, []byte(tc.payload))
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) != tc.msg {
			t.Errorf("%s: %v\n want %q", tc.name, err, tc.msg)
		}
	}
	// Several bad events: the message names the first, the fields list each.
	_, err = ingest.DecodeMQTTEvent(12, []byte(`[{"event_id": "a"}, `+okEvent+`, {"result": "maybe"}]`))
	if f := doorledger.ErrorFields(err); len(f) != 2 || f["event 0"] != "occurred_at: missing" || f["event 2"] != "event_id: missing" ||
		!strings.HasPrefix(doorledger.ErrorMessage(err), "2 problems in the message; nothing was accepted. event 0: occurred_at: missing") {
		t.Fatalf("several: %v", err)
	}
	if _, err := ingest.DecodeMQTTEvent(12, make([]byte, ingest.MaxMQTTPayload+1)); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Fatalf("oversized: %v", err)
	}
}

func TestDecodeHTTPBatch(t *testing.T) {
	body := `{"events": [
		{"device_id": 7, "event_id": "a", "occurred_at": "2026-03-08T18:04:00.123Z", "method": "remote", "result": "granted"},
		{"device": "SN-1", "building_id": 3, "event_id": "b", "occurred_at": "2026-03-08T18:05:00Z", "method": "courier app", "result": "denied"}
	], "vendor": "acme"}`
	evs, err := ingest.DecodeHTTPBatch([]byte(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].DeviceID != 7 || evs[0].OccurredAt.Nanosecond() != 123000000 || evs[1].DeviceRef != "SN-1" || evs[1].BuildingID != 3 ||
		evs[1].Method != "courier_app" || evs[0].Source != doorledger.SourceHTTP {
		t.Fatalf("got %+v", evs)
	}
	if evs, err := ingest.DecodeHTTPBatch([]byte(`[{"device_id": 7, "event_id": "a", "occurred_at": "2026-03-08T18:04:00Z", "method": "remote", "result": "granted"}]`), 5); err != nil || len(evs) != 1 {
		t.Fatalf("bare array: %v", err)
	}
	ev := `{"device_id": 7, "event_id": "a", "occurred_at": "2026-03-08T18:04:00Z", "method": "remote", "result": "granted"}`
	for _, tc := range []struct {
		name, body, msg string
		max             int
	}{
		{"oversized", "[" + strings.TrimSuffix(strings.Repeat(ev+",", 4), ",") + "]", "batch: holds 4 events; at most 3 are allowed", 3},
		{"default max", "[" + strings.TrimSuffix(strings.Repeat(ev+",", 1001), ",") + "]", "batch: holds 1001 events; at most 1000 are allowed", 0},
		{"no events", `{"vendor": "acme"}`, "events: missing", 0},
		{"events not array", `{"events": {}}`, "events: must be an array", 0},
		{"scalar", `42`, "body: must be an object with an events array, or an array", 0},
		{"repeated events", `{"events": [], "events": []}`, "body: events: given twice", 0},
		{"no device", `[{"event_id": "a", "occurred_at": "2026-03-08T18:04:00Z", "method": "remote", "result": "granted"}]`,
			"event 0: device: missing (give device_id or device)", 0},
		{"device without building", `[{"device": "SN-1", "event_id": "a", "occurred_at": "2026-03-08T18:04:00Z", "method": "remote", "result": "granted"}]`,
			"event 0: building_id: missing (needed for a device named only by its reference)", 0},
		{"bad device id", `[{"device_id": "7", "event_id": "a", "occurred_at": "2026-03-08T18:04:00Z", "method": "remote", "result": "granted"}]`,
			"event 0: device_id: must be a positive integer", 0},
		{"negative device id", `[{"device_id": -7, "event_id": "a", "occurred_at": "2026-03-08T18:04:00Z", "method": "remote", "result": "granted"}]`,
			"event 0: device_id: must be a positive integer", 0},
		{"time without zone", `[{"device_id": 7, "event_id": "a", "occurred_at": "2026-03-08T18:04:00", "method": "remote", "result": "granted"}]`,
			`event 0: occurred_at: "2026-03-08T18:04:00" is not an RFC 3339 time (such as 2026-03-08T14:03:00Z)`, 0},
	} {
		_, err := ingest.DecodeHTTPBatch([]byte(tc.body), tc.max)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) != tc.msg {
			t.Errorf("%s: %v\n want %q", tc.name, err, tc.msg)
		}
	}
}

func TestParseCSV(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	file := "\ufeffTimestamp,Serial Number,Status,Type,Courier,Event ID\n" +
		"2026-03-08 01:30:00,SN-1,Success,Courier App,C-1,x1\n" +
		"2026-03-08T03:30:00Z,SN-1,denied,keypad,\"C-2, with comma\",x2\n" +
		"1741420800,SN-2,granted,,C-3,\n"
	pv, err := ingest.PreviewCSV(strings.NewReader(file), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.Header) != 6 || pv.Header[0] != "Timestamp" || len(pv.Rows) != 2 || pv.Comma != ',' {
		t.Fatalf("preview: %+v", pv)
	}
	want := map[string]int{"occurred_at": 0, "device": 1, "result": 2, "method": 3, "actor_ref": 4, "event_id": 5}
	if fmt.Sprint(pv.Guess) != fmt.Sprint(want) {
		t.Fatalf("guess %v, want %v", pv.Guess, want)
	}
	imp, err := ingest.ParseCSV(strings.NewReader(file), ingest.CSVMapping{Columns: pv.Guess, Location: ny})
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Events) != 3 || fmt.Sprint(imp.Lines) != "[2 3 4]" {
		t.Fatalf("import: %+v", imp)
	}
	e := imp.Events
	if !e[0].OccurredAt.Equal(time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC)) || e[0].Result != "granted" || e[0].Method != "courier_app" || e[0].DeviceRef != "SN-1" || e[0].EventID != "x1" {
		t.Errorf("row 1: %+v", e[0])
	}
	if e[1].ActorRef != "C-2, with comma" || e[1].Result != "denied" || e[1].Source != "csv" {
		t.Errorf("row 2: %+v", e[1])
	}
	if !e[2].OccurredAt.Equal(time.Unix(1741420800, 0)) || e[2].Method != "unknown" || !strings.HasPrefix(e[2].EventID, "csv-") {
		t.Errorf("row 3: %+v", e[2])
	}
	again, _ := ingest.ParseCSV(strings.NewReader(file), ingest.CSVMapping{Columns: pv.Guess, Location: ny})
	if again.Events[2].EventID != e[2].EventID {
		t.Errorf("derived event ids differ between two reads of the same file")
	}
	// Semicolons, no BOM, custom layout.
	semi := "when;device;outcome\n08/03/2026 14:05;SN-9;ok\n"
	imp, err = ingest.ParseCSV(strings.NewReader(semi), ingest.CSVMapping{Columns: map[string]int{"occurred_at": 0, "device": 1, "result": 2}, TimeLayout: "02/01/2006 15:04"})
	if err != nil || !imp.Events[0].OccurredAt.Equal(time.Date(2026, 3, 8, 14, 5, 0, 0, time.UTC)) {
		t.Fatalf("semicolons: %+v %v", imp, err)
	}

	m := ingest.CSVMapping{Columns: map[string]int{"occurred_at": 0, "device": 1, "result": 2}}
	for _, tc := range []struct {
		name, file string
		fields     map[string]string // line → message (all of them)
		msg        string            // or the whole message
	}{
		{"bad values", "time,device,result\n2026-03-08 10:00,SN-1,granted\nlater,SN-1,granted\n2026-03-08 10:00,,granted\n2026-03-08 10:00,SN-1,maybe\n", map[string]string{
			"line 3": `occurred_at: "later" is not a time (use 2026-03-08T14:03:00Z or 2026-03-08 14:03:00)`,
			"line 4": "device: missing",
			"line 5": `result: "maybe" is neither granted nor denied`,
		}, ""},
		{"wrong columns", "time,device,result\n2026-03-08 10:00,SN-1\n2026-03-08 10:00,SN-1,granted,extra\n2026-03-08 10:00,SN-1,granted\n", map[string]string{
			"line 2": "has 2 columns; the header has 3",
			"line 3": "has 4 columns; the header has 3",
		}, ""},
		{"latin-1", "time,device,result\n2026-03-08 10:00,SN-1,granted\n2026-03-08 10:00,Z\xfcrich,granted\n", map[string]string{
			"line 3": `column "device": not UTF-8 text; export the file as UTF-8 (it may be Latin-1 or Windows-1252)`,
		}, ""},
		{"broken quoting", "time,device,result\n2026-03-08 10:00,SN-1,granted\n2026-03-08 10:00,\"SN-1,granted\n2026-03-08 10:00,SN-2,granted\n", map[string]string{
			"line 4": `broken quoting at column 31: extraneous or missing " in quoted-field (in the row that starts on line 3); nothing after it was read`,
		}, ""},
		{"bare quote", "time,device,result\n2026-03-08 10:00,SN\"1,granted\n", map[string]string{
			"line 2": `broken quoting at column 20: bare " in non-quoted-field; nothing after it was read`,
		}, ""},
		{"utf-16", "\xff\xfet\x00i\x00m\x00e\x00", nil, "line 1: the file is UTF-16 or binary, not UTF-8 text; export it as CSV UTF-8"},
		{"empty", "", nil, "The file is empty."},
		{"header only", "time,device,result\n", nil, "The file has a header but no rows."},
		{"latin-1 header", "t\xefme,device,result\n", nil, "line 1: column 1: not UTF-8 text; export the file as UTF-8 (it may be Latin-1 or Windows-1252)"},
	} {
		_, err := ingest.ParseCSV(strings.NewReader(tc.file), m)
		if doorledger.ErrorCode(err) != doorledger.EINVALID {
			t.Errorf("%s: %v, want EINVALID", tc.name, err)
			continue
		}
		if tc.fields != nil && fmt.Sprint(doorledger.ErrorFields(err)) != fmt.Sprint(tc.fields) {
			t.Errorf("%s: fields\n %v\nwant\n %v", tc.name, doorledger.ErrorFields(err), tc.fields)
		}
		if tc.msg != "" && doorledger.ErrorMessage(err) != tc.msg {
			t.Errorf("%s: %q, want %q", tc.name, doorledger.ErrorMessage(err), tc.msg)
		}
	}
	// A mapping that misses what is required, or names a column twice.
	_, err = ingest.ParseCSV(strings.NewReader("a,b\n1,2\n"), ingest.CSVMapping{Columns: map[string]int{"method": 0, "actor_ref": 0, "colour": 1}})
	f := doorledger.ErrorFields(err)
	if f["occurred_at"] == "" || f["result"] == "" || f["device"] == "" || f["colour"] == "" || (f["method"] == "" && f["actor_ref"] == "") {
		t.Fatalf("bad mapping: %v", err)
	}
	// More rows than allowed.
	var big strings.Builder
	big.WriteString("time,device,result\n")
	for i := 0; i <= ingest.MaxCSVRows; i++ {
		big.WriteString("2026-03-08 10:00,SN-1,granted\n")
	}
	if _, err := ingest.ParseCSV(strings.NewReader(big.String()), m); !strings.Contains(fmt.Sprint(doorledger.ErrorFields(err)), "more than 250000 rows") {
		t.Fatalf("too many rows: %v", err)
	}
}
