package views

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestUnlockTime(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 8, 14, 14, 5, 0, time.UTC) // New York's clocks went forward that morning
	for _, tt := range []struct {
		name string
		t    time.Time
		loc  *time.Location
		want string
	}{
		{"zero", time.Time{}, ny, "—"},
		{"no zone reads UTC", at, nil, "2026-03-08 14:14:05 UTC"},
		{"summer time labelled", at, ny, "2026-03-08 10:14:05 EDT"},
		{"winter time labelled", at.AddDate(0, 0, -1), ny, "2026-03-07 09:14:05 EST"},
	} {
		if got := UnlockTime(tt.t, tt.loc); got != tt.want {
			t.Errorf("%s: UnlockTime = %q, want %q", tt.name, got, tt.want)
		}
		// FormTime is the same to the minute.
		want := tt.want
		if len(want) > 16 {
			want = want[:16] + want[19:]
		}
		if got := FormTime(tt.t, tt.loc); got != want {
			t.Errorf("%s: FormTime = %q, want %q", tt.name, got, want)
		}
	}
}

func TestSignatureVerifiedWords(t *testing.T) {
	sig := &doorledger.ConsentSignature{Address: "paula@example.com", Method: doorledger.VerifyLink}
	c := &doorledger.Consent{Signer: doorledger.Signer{Email: "paula@example.com"}, Signature: sig}
	for _, tt := range []struct {
		method      doorledger.VerificationMethod
		withAddress bool
		want        string
	}{
		{doorledger.VerifyLink, true, "The signer's roster address, paula@example.com, by the one-time link mailed to it. The typed name is not verified."},
		{doorledger.VerifyLink, false, "The signer's roster address by the one-time link mailed to it. The typed name is not verified."},
		{doorledger.VerifyCode, true, "The signer's roster address, paula@example.com, by a 6-digit code mailed to it, typed on the installer's screen. The typed name is not verified."},
	} {
		sig.Method = tt.method
		if got := verifiedLabel(c, tt.withAddress); got != tt.want {
			t.Errorf("verifiedLabel(%s, %v) = %q, want %q", tt.method, tt.withAddress, got, tt.want)
		}
		if got := signatureVerified(doorledger.RequestSigner{Signature: sig}, tt.withAddress); got != tt.want {
			t.Errorf("signatureVerified(%s, %v) = %q, want %q", tt.method, tt.withAddress, got, tt.want)
		}
	}
}

func TestUnlockWords(t *testing.T) {
	for _, tt := range []struct{ name, got, want string }{
		{"anomaly label", AnomalyLabel(doorledger.AnomalyAfterRevocation), "after revocation"},
		{"anomaly label, one word", AnomalyLabel(doorledger.AnomalyBurst), "burst"},
		{"granted", resultClass(doorledger.UnlockGranted), "badge-ok"},
		{"denied", resultClass(doorledger.UnlockDenied), "badge-warn"},
		{"source mqtt", sourceLabel(doorledger.SourceMQTT), "device"},
		{"source http", sourceLabel(doorledger.SourceHTTP), "vendor cloud"},
		{"source csv", sourceLabel(doorledger.SourceCSV), "CSV import"},
		{"source other", sourceLabel("fax"), "fax"},
		{"open count", openCount(5, 1000), "5"},
		{"open count capped", openCount(1000, 1000), "1000+"},
		{"open count uncapped", openCount(1200, 0), "1200"},
		{"no open anomalies", openClass(0), "badge-ok"},
		{"open anomalies", openClass(3), "badge-danger"},
		{"column label", columnLabel(2, "time"), "3: time"},
		{"column label without a name", columnLabel(0, ""), "1: (no name)"},
		{"cell", cell(strings.Repeat("é", 60)), strings.Repeat("é", 60)},
		{"long cell cut", cell(strings.Repeat("é", 61)), strings.Repeat("é", 60) + "…"},
		{"device name", deviceName(&doorledger.Device{DeviceDetails: doorledger.DeviceDetails{Vendor: "Acme", Serial: "X1", Location: "lobby"}}), "Acme X1 (lobby)"},
		{"device name without vendor or place", deviceName(&doorledger.Device{DeviceDetails: doorledger.DeviceDetails{Serial: "X1"}}), "X1"},
		{"ack id", ackID(&doorledger.UnlockEvent{ID: 42}), "ack-42"},
		{"ack path", AckPath(7, 42), "/buildings/7/anomalies/42/ack"},
		{"ack all path", AckAllPath(7), "/buildings/7/anomalies/ack"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestUnlocksURL(t *testing.T) {
	for _, tt := range []struct {
		q, after, want string
	}{
		{"", "", "/buildings/7/unlocks"},
		{"device=3&method=keypad", "", "/buildings/7/unlocks?device=3&method=keypad"},
		{"method=keypad&device=3", "c-9", "/buildings/7/unlocks?after=c-9&device=3&method=keypad"},
		{"", "c 9", "/buildings/7/unlocks?after=c+9"},
	} {
		if got := UnlocksURL(7, tt.q, tt.after); got != tt.want {
			t.Errorf("UnlocksURL(7, %q, %q) = %q, want %q", tt.q, tt.after, got, tt.want)
		}
	}
	for _, tt := range []struct{ suffix, q, want string }{
		{".csv", "", "/buildings/7/unlocks.csv"},
		{".csv", "device=3", "/buildings/7/unlocks.csv?device=3"},
		{"/events", "anomalies=open", "/buildings/7/unlocks/events?anomalies=open"},
	} {
		if got := unlocksPath(7, tt.suffix, tt.q); got != tt.want {
			t.Errorf("unlocksPath(7, %q, %q) = %q, want %q", tt.suffix, tt.q, got, tt.want)
		}
	}
	if got := (UnlocksView{}).query(); got != "" {
		t.Errorf("query without rows = %q, want empty", got)
	}
	if got := (UnlocksView{Rows: &UnlockRowsView{Query: "device=3"}}).query(); got != "device=3" {
		t.Errorf("query = %q, want device=3", got)
	}
}

func TestTimeTitle(t *testing.T) {
	occurred := time.Date(2026, 3, 8, 9, 0, 0, 0, time.FixedZone("X", 3600))
	received := time.Date(2026, 3, 8, 14, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		e    doorledger.UnlockEvent
		want string
	}{
		{"device time only", doorledger.UnlockEvent{OccurredAt: occurred},
			"device clock, 2026-03-08 08:00:00 UTC"},
		{"received too", doorledger.UnlockEvent{OccurredAt: occurred, ReceivedAt: received},
			"device clock, 2026-03-08 08:00:00 UTC; received by the portal 2026-03-08 14:00:00 UTC"},
		{"skewed", doorledger.UnlockEvent{OccurredAt: occurred, ReceivedAt: received, Anomalies: []string{doorledger.AnomalyClockSkew}},
			"device clock, 2026-03-08 08:00:00 UTC; received by the portal 2026-03-08 14:00:00 UTC; the device's clock is flagged skewed, so the event is dated by the time received"},
	} {
		if got := timeTitle(&tt.e); got != tt.want {
			t.Errorf("%s: timeTitle = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestOpenIDs(t *testing.T) {
	acked := time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		events []*doorledger.UnlockEvent
		want   []int64
	}{
		{"none", nil, nil},
		{"no anomalies", []*doorledger.UnlockEvent{{ID: 1}, {ID: 2}}, nil},
		{"open ones in order, acknowledged ones left out", []*doorledger.UnlockEvent{
			{ID: 5, Anomalies: []string{doorledger.AnomalyBurst}},
			{ID: 4},
			{ID: 3, Anomalies: []string{doorledger.AnomalyBurst}, AcknowledgedAt: acked},
			{ID: 2, Anomalies: []string{doorledger.AnomalyAfterRevocation, doorledger.AnomalyBurst}},
		}, []int64{5, 2}},
	} {
		if got := openIDs(tt.events); !slices.Equal(got, tt.want) {
			t.Errorf("%s: openIDs = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSortedDevices(t *testing.T) {
	m := map[int64]*doorledger.Device{9: {ID: 9}, 2: {ID: 2}, 40: {ID: 40}, 7: {ID: 7}}
	var got []int64
	for _, d := range sortedDevices(m) {
		got = append(got, d.ID)
	}
	if want := []int64{2, 7, 9, 40}; !slices.Equal(got, want) {
		t.Errorf("sortedDevices = %v, want %v", got, want)
	}
	if got := sortedDevices(nil); len(got) != 0 {
		t.Errorf("sortedDevices(nil) = %v, want none", got)
	}
}

func TestUnlockSummaryAck(t *testing.T) {
	b := &doorledger.Building{ID: 7}
	for _, tt := range []struct {
		name      string
		s         UnlockSummary
		canManage bool
	}{
		{"manager with a token", UnlockSummary{Building: b, CSRF: "tok", CanManage: true}, true},
		{"manager on a page without a token", UnlockSummary{Building: b, CanManage: true}, false},
		{"not a manager", UnlockSummary{Building: b, CSRF: "tok"}, false},
	} {
		got := tt.s.ack("/devices/3")
		want := AckControls{BuildingID: 7, CSRF: tt.s.CSRF, CanManage: tt.canManage, Back: "/devices/3"}
		if got != want {
			t.Errorf("%s: ack = %+v, want %+v", tt.name, got, want)
		}
	}
}
