package notice

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// UnlockAlerts gathers a group of anomalous unlock events into managers'
// alerts: one per building, device, combination of anomalies and hour
// received (the key), so that the outbox sends one mail per key and a burst
// is one mail, not a hundred. The zero value is empty and ready.
type UnlockAlerts struct {
	byKey map[string]*UnlockAlert
	keys  []string // in the order first seen
}

// UnlockAlert is the alert of one key.
type UnlockAlert struct {
	Key      string
	Building UnlockAlertBuilding
	Device   *UnlockAlertDevice // nil: a device not registered in the building
	Ref      string             // what the source called the device
	Flags    int64              // the anomalies' bits (the key's)
	Events   []string           // lines, at most unlockAlertEventsListed
	More     int                // events not listed
	Command  *doorledger.Command
}

// UnlockAlertBuilding is the building an alert is about.
type UnlockAlertBuilding struct {
	ID   int64
	Name string
	Loc  *time.Location
}

// UnlockAlertDevice is the registered device an alert is about.
type UnlockAlertDevice struct {
	ID                              int64
	Vendor, Model, Serial, Location string
}

const unlockAlertEventsListed = 10

// Add adds an anomalous event (its anomalies' bits flags; skewed: its device
// clock is not to be trusted, so it counts at the time received) to the
// alert of its key; cmd, when not nil, is the command that told the device to
// disable itself.
func (as *UnlockAlerts) Add(b UnlockAlertBuilding, d *UnlockAlertDevice, ev *doorledger.UnlockEvent, flags int64, skewed bool, cmd *doorledger.Command) {
	dev := "ref:" + ev.DeviceRef
	if d != nil {
		dev = "device:" + strconv.FormatInt(d.ID, 10)
	}
	key := fmt.Sprintf("unlock:%d:%s:%d:%s", b.ID, dev, flags, ev.ReceivedAt.UTC().Format("2006-01-02T15"))
	a := as.byKey[key]
	if a == nil {
		if as.byKey == nil {
			as.byKey = map[string]*UnlockAlert{}
		}
		a = &UnlockAlert{Key: key, Building: b, Device: d, Ref: ev.DeviceRef, Flags: flags}
		as.byKey[key] = a
		as.keys = append(as.keys, key)
	}
	if cmd != nil {
		a.Command = cmd
	}
	if len(a.Events) >= unlockAlertEventsListed {
		a.More++
		return
	}
	at := ev.OccurredAt
	if skewed {
		at = ev.ReceivedAt
	}
	line := fmt.Sprintf("  %s  %s  %s", at.In(b.Loc).Format("2006-01-02 15:04:05 MST"), ev.Result, ev.Method)
	if ev.ActorRef != "" {
		line += "  actor " + ev.ActorRef
	}
	if skewed {
		line += "  (received then; the device's clock said " + ev.OccurredAt.In(b.Loc).Format("2006-01-02 15:04:05 MST") + ")"
	}
	a.Events = append(a.Events, line+"  (event "+ev.EventID+")")
}

// All returns the alerts in the order their keys were first seen.
func (as *UnlockAlerts) All() []*UnlockAlert {
	all := make([]*UnlockAlert, len(as.keys))
	for i, k := range as.keys {
		all[i] = as.byKey[k]
	}
	return all
}

// Mail returns the alert's subject and body; kinds names its anomalies (the
// kinds of Flags, in their fixed order).
func (a *UnlockAlert) Mail(kinds []string) (subject, body string) {
	var who string
	if d := a.Device; d != nil {
		model := d.Model
		if model == "" {
			model = "(model unknown)"
		}
		who = fmt.Sprintf("device %d (%s %s, serial %s, at %s)", d.ID, d.Vendor, model, d.Serial, d.Location)
	} else {
		who = fmt.Sprintf("an unknown device calling itself %q, which is not registered in this building", a.Ref)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Doorledger recorded door events at %s from %s that need your attention:\n\n", a.Building.Name, who)
	for _, k := range kinds {
		fmt.Fprintf(&b, "- %s: it %s.\n", k, doorledger.AnomalyDescription(k))
	}
	b.WriteString("\nEvents (building time):\n")
	for _, l := range a.Events {
		b.WriteString(l + "\n")
	}
	if a.More > 0 {
		fmt.Fprintf(&b, "  … and %d more.\n", a.More)
	}
	if a.Command != nil {
		fmt.Fprintf(&b, "\nThe device has no active consent: Doorledger flagged it unconsented and told it to disable itself (command %d). Until it confirms, couriers may still be able to open the door: check the panel.\n", a.Command.ID)
	}
	b.WriteString("\nFurther events like these within the hour are recorded without another mail; see the building's unlock history.\n")
	return fmt.Sprintf("Unlock anomaly at %s: %s", a.Building.Name, strings.Join(kinds, ", ")), b.String()
}
