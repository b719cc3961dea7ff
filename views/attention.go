package views

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/doorledger/doorledger"
)

// AttentionView is the first screen after sign-in: what needs the user.
type AttentionView struct {
	Attention *doorledger.Attention
	// CanManage: the user may resolve (managers, admins); boards read only.
	CanManage bool
	// BrokerDown: the portal cannot reach its MQTT broker, so a command not
	// confirmed waits for the broker rather than blaming the device.
	BrokerDown bool
}

// attentionKindWords names n things of a kind, as the list's headings say it.
func attentionKindWords(kind doorledger.AttentionKind, n int) string {
	one, many := "", ""
	switch kind {
	case doorledger.AttentionUnconsented:
		one, many = "device found without consent", "devices found without consent"
	case doorledger.AttentionCommand:
		one, many = "command not confirmed or refused by the device", "commands not confirmed or refused by the device"
	case doorledger.AttentionOffline:
		one, many = "device offline past its heartbeat", "devices offline past their heartbeat"
	case doorledger.AttentionAnomalies:
		one, many = "open anomaly", "open anomalies"
	case doorledger.AttentionAwaiting:
		one, many = "consent request waiting for signatures", "consent requests waiting for signatures"
	case doorledger.AttentionLapsing:
		one, many = "consent lapsing in the next 30 days", "consents lapsing in the next 30 days"
	case doorledger.AttentionEnded:
		one, many = "withdrawal or dispute in the last 7 days", "withdrawals and disputes in the last 7 days"
	case doorledger.AttentionResidentReport:
		one, many = "resident report to resolve", "resident reports to resolve"
	}
	return strconv.Itoa(n) + " " + plural(n, one, many)
}

// attentionShort is the buildings list's word for n things of a kind.
func attentionShort(kind doorledger.AttentionKind, n int) string {
	w := map[doorledger.AttentionKind][2]string{
		doorledger.AttentionUnconsented:    {"found without consent", "found without consent"},
		doorledger.AttentionCommand:        {"command unconfirmed", "commands unconfirmed"},
		doorledger.AttentionOffline:        {"offline", "offline"},
		doorledger.AttentionAnomalies:      {"open anomaly", "open anomalies"},
		doorledger.AttentionAwaiting:       {"awaiting signatures", "awaiting signatures"},
		doorledger.AttentionLapsing:        {"lapsing soon", "lapsing soon"},
		doorledger.AttentionEnded:          {"withdrawn or disputed", "withdrawn or disputed"},
		doorledger.AttentionResidentReport: {"resident report", "resident reports"},
	}[kind]
	return strconv.Itoa(n) + " " + plural(n, w[0], w[1])
}

// attentionClass colours a kind: what may open a door without consent is
// danger, the rest a warning.
func attentionClass(kind doorledger.AttentionKind) string {
	switch kind {
	case doorledger.AttentionUnconsented, doorledger.AttentionCommand, doorledger.AttentionEnded, doorledger.AttentionResidentReport:
		return "badge badge-danger"
	}
	return "badge badge-warn"
}

// attentionHref is where an item is resolved (or, for boards, read).
func attentionHref(b *doorledger.BuildingAttention, it doorledger.AttentionItem) string {
	switch {
	case it.DeviceID != 0:
		return idPath("/devices/%d", it.DeviceID)
	case it.ConsentID != 0:
		return idPath("/consents/%d", it.ConsentID)
	case it.ReportID != 0:
		return idPath("/buildings/%d#residents", b.BuildingID)
	}
	return idPath("/buildings/%d/unlocks?", b.BuildingID) + url.Values{"anomalies": {"open"}}.Encode()
}

// attentionItemText says what an item is and since when.
func attentionItemText(b *doorledger.BuildingAttention, it doorledger.AttentionItem, now time.Time, brokerDown bool) string {
	loc := b.Location()
	switch it.Kind {
	case doorledger.AttentionUnconsented:
		return fmt.Sprintf("Device %d: %s — recorded %s", it.DeviceID, it.Label, FormTime(it.At, loc))
	case doorledger.AttentionCommand:
		what := "not confirmed"
		switch {
		case it.Status == "refused":
			what = "refused by the device"
		case brokerDown:
			what = "waiting for the broker (the portal cannot reach it)"
		}
		return fmt.Sprintf("Device %d: %s — command of %s %s", it.DeviceID, it.Label, FormTime(it.At, loc), what)
	case doorledger.AttentionOffline:
		return fmt.Sprintf("Device %d: %s — silent since %s (%s)", it.DeviceID, it.Label, FormTime(it.At, loc), Waited(now.Sub(it.At)))
	case doorledger.AttentionAwaiting:
		return fmt.Sprintf("Request #%d: %s — waiting %s", it.ConsentID, it.Label, Waited(now.Sub(it.At)))
	case doorledger.AttentionLapsing:
		if !it.At.After(now) {
			return fmt.Sprintf("Consent #%d: %s — lapsed %s", it.ConsentID, it.Label, FormTime(it.At, loc))
		}
		return fmt.Sprintf("Consent #%d: %s — lapses %s (in %s)", it.ConsentID, it.Label, FormTime(it.At, loc), Waited(it.At.Sub(now)))
	case doorledger.AttentionEnded:
		return fmt.Sprintf("Consent #%d: %s — %s %s", it.ConsentID, it.Label, it.Status, FormTime(it.At, loc))
	case doorledger.AttentionResidentReport:
		return fmt.Sprintf("Report #%d: “%s” — reported %s", it.ReportID, it.Label, FormTime(it.At, loc))
	case doorledger.AttentionAnomalies:
		return "Review and acknowledge them in the door openings"
	}
	return it.Label
}

// attentionChecked says when the list was read, to the minute (the page
// re-reads every second; the minute keeps the live region quiet).
func attentionChecked(a *doorledger.Attention) string {
	return a.CheckedAt.UTC().Format("15:04 UTC, Jan 2")
}

func attentionCheckedISO(a *doorledger.Attention) string {
	return a.CheckedAt.UTC().Truncate(time.Minute).Format(time.RFC3339)
}

// attentionMore is how many items of kind the building has beyond those shown.
func attentionMore(b *doorledger.BuildingAttention, kind doorledger.AttentionKind) int {
	if kind == doorledger.AttentionAnomalies {
		return 0
	}
	return b.Counts.Of(kind) - len(b.ItemsOf(kind))
}

// attentionMoreHref is where the rest of a kind is listed.
func attentionMoreHref(b *doorledger.BuildingAttention, kind doorledger.AttentionKind) string {
	switch kind {
	case doorledger.AttentionAwaiting, doorledger.AttentionLapsing, doorledger.AttentionEnded:
		return idPath("/buildings/%d#consents", b.BuildingID)
	case doorledger.AttentionResidentReport:
		return idPath("/buildings/%d#residents", b.BuildingID)
	}
	return idPath("/buildings/%d#devices", b.BuildingID)
}
