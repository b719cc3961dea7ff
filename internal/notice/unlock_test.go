package notice

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// TestUnlockAlerts: events group by building, device, anomalies and hour
// received; ten are listed, the rest counted; the mail reads as it always
// has (golden).
func TestUnlockAlerts(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	b := UnlockAlertBuilding{ID: 4, Name: "Elm Court", Loc: ny}
	dev := &UnlockAlertDevice{ID: 9, Vendor: "Acme", Serial: "SN-1", Location: "lobby"}
	at := time.Date(2026, 12, 7, 14, 5, 0, 0, time.UTC)
	var as UnlockAlerts
	for i := range 12 {
		ev := &doorledger.UnlockEvent{DeviceRef: "SN-1", EventID: fmt.Sprintf("e%d", i), Method: "pin", Result: doorledger.UnlockGranted,
			OccurredAt: at.Add(time.Duration(i) * time.Second), ReceivedAt: at.Add(time.Duration(i) * time.Second)}
		if i == 1 {
			ev.ActorRef = "courier 7"
		}
		var cmd *doorledger.Command
		if i == 11 {
			cmd = &doorledger.Command{ID: 31}
		}
		as.Add(b, dev, ev, 2|16, false, cmd)
	}
	skewed := &doorledger.UnlockEvent{DeviceRef: "ghost", EventID: "g1", Method: "app", Result: doorledger.UnlockDenied,
		OccurredAt: at.Add(-48 * time.Hour), ReceivedAt: at}
	as.Add(b, nil, skewed, 4|32, true, nil)
	as.Add(b, dev, &doorledger.UnlockEvent{EventID: "late", ReceivedAt: at.Add(time.Hour)}, 2|16, false, nil) // the next hour

	all := as.All()
	if len(all) != 3 {
		t.Fatalf("%d alerts, want 3", len(all))
	}
	if got, want := all[0].Key, "unlock:4:device:9:18:2026-12-07T14"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	if got, want := all[1].Key, "unlock:4:ref:ghost:36:2026-12-07T14"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	if got, want := all[2].Key, "unlock:4:device:9:18:2026-12-07T15"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}

	subject, body := all[0].Mail([]string{doorledger.AnomalyWithoutConsent, doorledger.AnomalyBurst})
	if want := "Unlock anomaly at Elm Court: " + doorledger.AnomalyWithoutConsent + ", " + doorledger.AnomalyBurst; subject != want {
		t.Errorf("subject %q, want %q", subject, want)
	}
	want := "Doorledger recorded door events at Elm Court from device 9 (Acme (model unknown), serial SN-1, at lobby) that need your attention:\n\n" +
		"- " + doorledger.AnomalyWithoutConsent + ": it " + doorledger.AnomalyDescription(doorledger.AnomalyWithoutConsent) + ".\n" +
		"- " + doorledger.AnomalyBurst + ": it " + doorledger.AnomalyDescription(doorledger.AnomalyBurst) + ".\n" +
		"\nEvents (building time):\n" +
		"  2026-12-07 09:05:00 EST  granted  pin  (event e0)\n" +
		"  2026-12-07 09:05:01 EST  granted  pin  actor courier 7  (event e1)\n"
	for i := 2; i < 10; i++ {
		want += fmt.Sprintf("  2026-12-07 09:05:%02d EST  granted  pin  (event e%d)\n", i, i)
	}
	want += "  … and 2 more.\n" +
		"\nThe device has no active consent: Doorledger flagged it unconsented and told it to disable itself (command 31). Until it confirms, couriers may still be able to open the door: check the panel.\n" +
		"\nFurther events like these within the hour are recorded without another mail; see the building's unlock history.\n"
	if body != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}

	_, body = all[1].Mail([]string{doorledger.AnomalyUnknownDevice, doorledger.AnomalyClockSkew})
	want = "Doorledger recorded door events at Elm Court from an unknown device calling itself \"ghost\", which is not registered in this building that need your attention:\n\n" +
		"- " + doorledger.AnomalyUnknownDevice + ": it " + doorledger.AnomalyDescription(doorledger.AnomalyUnknownDevice) + ".\n" +
		"- " + doorledger.AnomalyClockSkew + ": it " + doorledger.AnomalyDescription(doorledger.AnomalyClockSkew) + ".\n" +
		"\nEvents (building time):\n" +
		"  2026-12-07 09:05:00 EST  denied  app  (received then; the device's clock said 2026-12-05 09:05:00 EST)  (event g1)\n" +
		"\nFurther events like these within the hour are recorded without another mail; see the building's unlock history.\n"
	if body != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
}
