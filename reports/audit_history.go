package reports

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

func (p *auditPrinter) history() error {
	a, t := p.a, p.t
	p.section("Unlock history")
	if t.events == 0 {
		p.para(fmt.Sprintf("No unlock events from %s to %s.", a.r.From, a.r.To))
		return nil
	}
	p.chart()
	p.heading(fmt.Sprintf("Every event, oldest first (%s)", number(t.events)))
	p.para("Times are building time, by the device's clock, except for an event flagged clock skew: a device whose clock was far from the portal's. Such an event is dated, counted and judged by the time the portal received it, and its row gives the device's time below it.")
	tb := newUnlockTable(p)
	tb.start()
	if !p.final {
		for _, n := range t.rowLines {
			tb.place(int(n))
		}
		return nil
	}

	// Pass 2: the events again, each row written as it comes.
	i := 0
	h := fnv.New64a()
	var idBuf [16]byte
	err := a.events(func(ev *doorledger.UnlockEvent) error {
		if err := a.inRange(ev); err != nil {
			return err
		}
		if i >= len(t.rowLines) {
			return fmt.Errorf("the events changed while the report was printed: more than the %d counted", len(t.rowLines))
		}
		tb.cells = a.eventCells(ev, tb.cells[:0])
		n := tb.layout(tb.cells)
		if n != int(t.rowLines[i]) {
			return fmt.Errorf("the events changed while the report was printed (event %d)", ev.ID)
		}
		y := tb.place(n)
		band := bandNone
		if i%2 == 1 {
			band = bandShade
		}
		tb.draw(y, n, band)
		h.Write(eventKey(idBuf[:], ev))
		i++
		return nil
	})
	if err != nil {
		return err
	}
	if i != len(t.rowLines) || h.Sum64() != t.sum {
		return fmt.Errorf("the events changed while the report was printed: %d counted, then %d", len(t.rowLines), i)
	}
	return nil
}

// eventCells appends the unlock table's cells for ev to cells.
func (a *audit) eventCells(ev *doorledger.UnlockEvent, cells []string) []string {
	device := a.labels[ev.DeviceID]
	if ev.DeviceID == 0 {
		device = "unregistered: " + cellText(ev.DeviceRef)
	} else if device == "" {
		device = "#" + strconv.FormatInt(ev.DeviceID, 10)
	}
	when := a.stamp(ev.OccurredAt)
	if ev.ClockSkewed() {
		when = a.stamp(ev.ReceivedAt) + "\nreceived; device clock:\n" + a.stamp(ev.OccurredAt)
	}
	return append(cells, when, device, cellText(ev.Method), cellText(ev.ActorRef), cellText(string(ev.Result)), a.flags(ev.Anomalies))
}

// stamp is p.when for the unlock table: the same text, formatted faster.
func (a *audit) stamp(t time.Time) string {
	t = t.In(a.loc)
	y, mo, d := t.Date()
	if y < 1000 || y > 9999 {
		return t.Format("2006-01-02 15:04:05 MST")
	}
	h, mi, s := t.Clock()
	zone, _ := t.Zone()
	b := make([]byte, 0, 20+len(zone))
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10), ' ',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10), ' ')
	return string(append(b, zone...))
}

// flags labels an event's anomalies, remembering the labels of the few
// combinations that occur.
func (a *audit) flags(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	key := kinds[0]
	if len(kinds) > 1 {
		key = strings.Join(kinds, "\x00")
	}
	if l, ok := a.flagLabels[key]; ok {
		return l
	}
	labels := make([]string, len(kinds))
	for i, k := range kinds {
		labels[i] = kindLabel(k)
	}
	l := strings.Join(labels, ", ")
	if len(a.flagLabels) < 1000 {
		a.flagLabels[key] = l
	}
	return l
}

func newUnlockTable(p *auditPrinter) *table {
	return &table{p: p, cols: []column{{"Time", 38, false}, {"Device", 32, false}, {"Method", 20, false},
		{"Actor reference", 34, false}, {"Result", 13, false}, {"Anomalies", 37, false}}}
}
