package reports

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

func (p *auditPrinter) anomalies() {
	t := p.t
	p.section("Anomalies")
	if t.anomalous == 0 {
		p.para("No unlock event in this range was flagged as an anomaly.")
		return
	}
	p.para("Doorledger flags an event when it records it, and mails the building's managers (and its board, if the building asks for that) one alert per device, kind of anomaly and hour. Below, for each kind and device: what happened, then what was done — the commands sent to the device from the first such event on, and the managers' acknowledgements with who gave them, when and their note — and which events are still open, acknowledged by no one. Every event is in the unlock history, with its flags; acknowledgements are as recorded when the report was generated.")
	groups := make([]*anomalyGroup, 0, len(t.groups))
	for _, g := range t.groups {
		groups = append(groups, g)
	}
	order := func(k string) int {
		if i := slices.Index(doorledger.AnomalyKinds, k); i >= 0 {
			return i
		}
		return len(doorledger.AnomalyKinds)
	}
	slices.SortFunc(groups, func(x, y *anomalyGroup) int {
		if c := order(x.kind) - order(y.kind); c != 0 {
			return c
		}
		if c := strings.Compare(x.kind, y.kind); c != 0 {
			return c
		}
		if c := cmpInt(x.deviceID, y.deviceID); c != 0 {
			return c
		}
		return strings.Compare(x.ref, y.ref)
	})
	kind := ""
	for _, g := range groups {
		if g.kind != kind {
			kind = g.kind
			p.heading(fmt.Sprintf("%s — %s", upperFirst(kindLabel(kind)), plural(t.byKind[kind], "event", "events")))
		}
		p.subheading(p.deviceLabel(g.deviceID, g.ref))
		happened := fmt.Sprintf("%s that %s", plural(g.count, "event", "events"), anomalyMeaning(g.kind))
		if g.count == 1 {
			happened += fmt.Sprintf(", at %s (event %s).", p.when(g.first), g.firstEvent)
		} else {
			happened += fmt.Sprintf(", from %s (event %s) to %s.", p.when(g.first), g.firstEvent, p.when(g.last))
		}
		p.field("What happened", happened)
		p.field("What was done", p.response(g))
		p.acknowledgements(g)
	}
	if t.moreGroups > 0 {
		p.para(fmt.Sprintf("%s more flags on further devices or references are not itemized here; they are in the unlock history.", number(t.moreGroups)))
	}
}

// acknowledgements prints who acknowledged the group's events, when and
// with what note, oldest first, and which of its events are still open.
func (p *auditPrinter) acknowledgements(g *anomalyGroup) {
	acks := make([]ackKey, 0, len(g.acks))
	for k := range g.acks {
		acks = append(acks, k)
	}
	slices.SortFunc(acks, func(x, y ackKey) int {
		if c := cmpInt(x.at, y.at); c != 0 {
			return c
		}
		if c := strings.Compare(x.by, y.by); c != 0 {
			return c
		}
		return strings.Compare(x.note, y.note)
	})
	for _, k := range acks {
		by := k.by
		if strings.TrimSpace(by) == "" {
			by = "someone not recorded"
		}
		s := fmt.Sprintf("By %s at %s", by, p.when(time.Unix(0, k.at)))
		if n := g.acks[k]; n != g.count {
			s += ", for " + plural(n, "event", "events")
		}
		p.field("Acknowledged", s+": “"+k.note+"”")
	}
	if g.moreAcks > 0 {
		p.field("Acknowledged", fmt.Sprintf("%s more, with other notes: each is in the portal's history and in the journal (anomaly.acknowledge).", plural(g.moreAcks, "event", "events")))
	}
	switch {
	case g.open == 0:
		p.field("Still open", "None: every one of these events was acknowledged.")
	case g.open == g.count && g.count == 1:
		p.field("Still open", "This event: no manager has acknowledged it.")
	case g.open == g.count:
		p.field("Still open", fmt.Sprintf("All %s: no manager has acknowledged them.", plural(g.open, "event", "events")))
	case g.open == 1:
		p.field("Still open", fmt.Sprintf("1 of %s, at %s (event %s).", number(g.count), p.when(g.firstOpen), g.firstOpenEv))
	default:
		p.field("Still open", fmt.Sprintf("%s of %s, the first at %s (event %s), the last at %s (event %s).",
			number(g.open), number(g.count), p.when(g.firstOpen), g.firstOpenEv, p.when(g.lastOpen), g.lastOpenEv))
	}
}

// response says what was done about an anomaly group: the alert, and the
// commands sent to its device from its first event on.
func (p *auditPrinter) response(g *anomalyGroup) string {
	parts := []string{"The managers were alerted."}
	if g.deviceID == 0 {
		return strings.Join(append(parts, "The device is not registered in Doorledger, so no command can reach it: it must be found and removed at the panel."), " ")
	}
	var cmds []string
	for _, c := range p.a.r.Commands {
		if c == nil || c.DeviceID != g.deviceID || c.RequestedAt.Before(g.first) {
			continue
		}
		s := fmt.Sprintf("%s (command %d, v%d) requested by %s at %s", upperFirst(verb(c.State)), c.ID, c.Version, c.RequestedBy, p.when(c.RequestedAt))
		if c.Reason != "" {
			s += ` ("` + c.Reason + `")`
		}
		if c.Status == doorledger.CommandConfirmed {
			s += fmt.Sprintf("; confirmed %s later.", duration(c.Latency()))
		} else {
			s += "; " + c.Status.Describe(c.State).Label + "."
		}
		cmds = append(cmds, s)
	}
	if len(cmds) == 0 {
		state := "its state is unknown"
		if d := p.a.devices[g.deviceID]; d != nil {
			state = "its status: " + p.a.deviceStatus(d).Label
		}
		return strings.Join(append(parts, "No command was sent to the device after the first of these events; "+state+"."), " ")
	}
	return strings.Join(append(parts, cmds...), " ")
}
