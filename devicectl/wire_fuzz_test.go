package devicectl

import (
	"bytes"
	"strings"
	"testing"
)

// scanSeeds are payloads scanEvents must decode itself (true) or leave to
// encoding/json (false).
var scanSeeds = []struct {
	payload string
	fast    bool
}{
	{`{"event_id":"a","occurred_at":"2026-11-22T08:59:00.123456789Z","method":"keypad","actor_ref":"sim-1","result":"granted"}`, true},
	{" {\t\"event_id\" :\r\n\"a\" , \"result\" : \"denied\" }\n", true},
	{`{"EVENT_ID":"a","Occurred_At":"2026-11-22T08:59:00+01:00","METHOD":"nfc","Result":"granted"}`, true},
	{`{"event_id":"a","event_id":"b","Event_Id":"c","occurred_at":"2026-11-22T08:59:00Z","occurred_at":"2026-11-23T08:59:00-05:30"}`, true},
	{`{"event_id":"é€😀","method":"\u007f"}`, false},
	{`{"event_id":"é€😀"}`, true},
	{`{"method":"` + "\x7f" + `"}`, true},
	{`{}`, true},
	{`{ }`, true},
	{`{"occurred_at":"2026-11-22t08:59:00z"}`, false},
	{`{"occurred_at":"2026-11-22T08:59:60Z"}`, false},
	{`{"occurred_at":"2026-11-22T24:00:00Z"}`, false},
	{`{"occurred_at":"2026-11-22 08:59:00Z"}`, false},
	{`{"occurred_at":"2026-11-22T8:59:00Z"}`, true}, // time accepts a one-digit hour
	{`{"occurred_at":"2026-11-22T08:59:00.Z"}`, false},
	{`{"occurred_at":"2026-11-22T08:59:00+24:00"}`, true},
	{`{"occurred_at":"\u0032026-11-22T08:59:00Z"}`, false},
	{`{"occurred_at":null}`, false},
	{`{"occurred_at":20261122}`, false},
	{`{"event_id":null,"method":"x"}`, false},
	{`{"event_id":1}`, false},
	{`{"event_id":true}`, false},
	{`{"event_id":"a\"b"}`, false},
	{`{"event_id":"a\\b"}`, false},
	{`{"event_id":"\u0041"}`, false},
	{`{"event_id":"a` + "\t" + `"}`, false},
	{`{"event_id":"a` + "\xff" + `"}`, false},
	{`{"event_id":"a` + "\xed\xa0\x80" + `"}`, false},
	{`{"reſult":"granted"}`, false},
	{`{"` + "\u212a" + `":"x"}`, false},
	{`{"event_ıd":"a"}`, false},
	{`{"ev\u0065nt_id":"a"}`, false},
	{`{"event-id":"a"}`, false},
	{`{"unknown":"a"}`, false},
	{`{"unknown":{"x":[1,2]}}`, false},
	{`{"event_id":"a",}`, false},
	{`{"event_id":"a"}x`, false},
	{`{"event_id":"a"}{}`, false},
	{`{"event_id":"a"`, false},
	{`{"event_id":"a`, false},
	{`{"event_id" "a"}`, false},
	{`{"event_id":"a" "method":"b"}`, false},
	{`{,}`, false},
	{`{"event_id":"a"}` + "\v", true}, // ParseEvents trims Unicode space first
	{"{\"event_id\":\"a\"\f}", false},
	{`[{"event_id":"a"}]`, true},
	{" [ {\"event_id\":\"a\"} ,\n{\"EVENT_ID\":\"b\",\"result\":\"denied\"} ] ", true},
	{`[{"event_id":"a"},{}]`, true},
	{`[]`, false},
	{`[{"event_id":"a"},]`, false},
	{`[{"event_id":"a"} {"event_id":"b"}]`, false},
	{`[{"event_id":"a"},null]`, false},
	{`[{"event_id":"a"}`, false},
	{`[{"event_id":"a"}]]`, false},
	{`[{"event_id":"a"}][]`, false},
	{`[[{"event_id":"a"}]]`, false},
	{`[{"event_id":"a"},{"x":1}]`, false},
	{`null`, false},
	{`"x"`, false},
	{``, false},
	{`{`, false},
}

// TestScanEventSeeds checks that scanEvents takes the payloads it should
// (FuzzParseEvents would pass trivially if it took none).
func TestScanEventSeeds(t *testing.T) {
	for _, s := range scanSeeds {
		if _, got := scanEvents(bytes.TrimSpace([]byte(s.payload)), nil); got != s.fast {
			t.Errorf("scanEvents(%q) = %v, want %v", s.payload, got, s.fast)
		}
	}
	ev := `{"event_id":"a","occurred_at":"2026-11-22T08:59:00Z","method":"keypad","result":"granted"}`
	for n, fast := range map[int]bool{1: true, 2: true, MaxEventsPerMessage: true, MaxEventsPerMessage + 1: false} {
		payload := []byte("[" + strings.TrimSuffix(strings.Repeat(ev+",", n), ",") + "]")
		if msgs, ok := scanEvents(payload, nil); ok != fast || ok && len(msgs) != n {
			t.Errorf("an array of %d: scanEvents took %d, %v; want %v", n, len(msgs), ok, fast)
		}
	}
}

// FuzzParseEvents checks that scanEvents decodes only what encoding/json
// accepts, and into the same events, so ParseEvents accepts and refuses
// exactly what it did with encoding/json alone.
func FuzzParseEvents(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		payload = bytes.TrimSpace(payload) // as ParseEvents does
		got, ok := scanEvents(payload, nil)
		if !ok {
			return // encoding/json decides
		}
		want, err := decodeEventsJSON(payload)
		if err != nil {
			t.Fatalf("scanEvents took %q, which encoding/json refuses: %v", payload, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: scanEvents decoded %d events, encoding/json %d", payload, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			gotName, gotOff := g.OccurredAt.Zone()
			wantName, wantOff := w.OccurredAt.Zone()
			if g.EventID != w.EventID || g.Method != w.Method || g.ActorRef != w.ActorRef || g.Result != w.Result ||
				!g.OccurredAt.Equal(w.OccurredAt) || gotName != wantName || gotOff != wantOff {
				t.Fatalf("%q: event %d: scanEvents decoded %+v, encoding/json %+v", payload, i, g, w)
			}
		}
	})
}
