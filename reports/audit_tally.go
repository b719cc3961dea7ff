package reports

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/go-pdf/fpdf"
)

// tally is what pass 1 counts from the events.
type tally struct {
	events, granted, denied, anomalous int
	openAnomalous                      int // anomalous events no manager has acknowledged
	buckets                            []bucket
	byDevice                           map[int64]*deviceCount // 0: every unregistered device
	unknownRefs                        map[string]bool        // distinct references of unregistered devices (up to maxGroups)
	byKind                             map[string]int
	groups                             map[groupKey]*anomalyGroup
	moreGroups                         int     // groups beyond maxGroups, not itemized
	rowLines                           []uint8 // lines of each event's row in the unlock table
	sum                                uint64  // of the events' ids and times, to check pass 2 reads the same
}

type bucket struct{ granted, denied, anomalous int }

type deviceCount struct{ granted, denied, anomalous int }

// groupKey is an anomaly kind on one device (or unregistered reference).
type groupKey struct {
	kind     string
	deviceID int64
	ref      string
}

type anomalyGroup struct {
	groupKey
	count       int
	first, last time.Time
	firstEvent  string

	// What managers did: the acknowledgements of the group's events, each
	// with how many events it covers (one note given to several events at
	// once has one time, author and note), and the events still open.
	acks                    map[ackKey]int
	moreAcks                int // events acknowledged by acknowledgements past maxAcks
	open                    int
	firstOpen, lastOpen     time.Time
	firstOpenEv, lastOpenEv string
}

// ackKey is one acknowledgement as a manager gave it.
type ackKey struct {
	at       int64 // UnixNano of AcknowledgedAt
	by, note string
}

// maxGroups bounds the anomaly groups itemized: an unregistered device may
// call itself anything, so their number is unbounded.
const maxGroups = 500

// maxAcks bounds the acknowledgements itemized per group: each may carry a
// note of its own.
const maxAcks = 20

// count reads the events once: the counts, the chart, the anomaly groups,
// and the height of each row of the unlock table, measured with pdf's fonts.
func (a *audit) count(pdf *fpdf.Fpdf) (*tally, error) {
	nb := (a.days + a.bucketDays - 1) / a.bucketDays
	t := &tally{buckets: make([]bucket, nb), byDevice: map[int64]*deviceCount{}, unknownRefs: map[string]bool{},
		byKind: map[string]int{}, groups: map[groupKey]*anomalyGroup{}}
	tb := newUnlockTable(a.printer(pdf, t, false))
	pdf.SetFont(fontFamily, "", tableFont)
	h := fnv.New64a()
	var idBuf [16]byte
	startDay := civilDay(a.start)
	err := a.events(func(ev *doorledger.UnlockEvent) error {
		if err := a.inRange(ev); err != nil {
			return err
		}
		t.events++
		if t.events > MaxAuditEvents {
			return errTooMany
		}
		b := &t.buckets[(civilDay(ev.EffectiveAt().In(a.loc))-startDay)/a.bucketDays]
		dc := t.byDevice[ev.DeviceID]
		if dc == nil {
			dc = &deviceCount{}
			t.byDevice[ev.DeviceID] = dc
		}
		if ev.Result == doorledger.UnlockGranted {
			t.granted, b.granted, dc.granted = t.granted+1, b.granted+1, dc.granted+1
		} else {
			t.denied, b.denied, dc.denied = t.denied+1, b.denied+1, dc.denied+1
		}
		if ev.DeviceID == 0 && len(t.unknownRefs) < maxGroups {
			t.unknownRefs[ev.DeviceRef] = true
		}
		if len(ev.Anomalies) > 0 {
			t.anomalous, b.anomalous, dc.anomalous = t.anomalous+1, b.anomalous+1, dc.anomalous+1
			if !ev.Acknowledged() {
				t.openAnomalous++
			}
			for _, k := range ev.Anomalies {
				t.byKind[k]++
				t.group(ev, k)
			}
		}
		tb.cells = a.eventCells(ev, tb.cells[:0])
		t.rowLines = append(t.rowLines, uint8(tb.layout(tb.cells)))
		h.Write(eventKey(idBuf[:], ev))
		return nil
	})
	if errors.Is(err, errTooMany) {
		return t, nil // the caller refuses the report with the count so far
	}
	t.sum = h.Sum64()
	return t, err
}

var errTooMany = errors.New("too many events")

func (t *tally) group(ev *doorledger.UnlockEvent, kind string) {
	k := groupKey{kind: kind, deviceID: ev.DeviceID}
	if ev.DeviceID == 0 {
		k.ref = ev.DeviceRef
	}
	at := ev.EffectiveAt()
	g := t.groups[k]
	if g == nil {
		if len(t.groups) >= maxGroups {
			t.moreGroups++
			return
		}
		g = &anomalyGroup{groupKey: k, first: at, firstEvent: ev.EventID}
		t.groups[k] = g
	}
	g.count++
	if at.Before(g.first) {
		g.first, g.firstEvent = at, ev.EventID
	}
	if at.After(g.last) {
		g.last = at
	}
	if !ev.Acknowledged() {
		if g.open == 0 || at.Before(g.firstOpen) {
			g.firstOpen, g.firstOpenEv = at, ev.EventID
		}
		if g.open == 0 || !at.Before(g.lastOpen) {
			g.lastOpen, g.lastOpenEv = at, ev.EventID
		}
		g.open++
		return
	}
	ak := ackKey{at: ev.AcknowledgedAt.UnixNano(), by: ev.AcknowledgedBy, note: ev.AckNote}
	if _, ok := g.acks[ak]; !ok && len(g.acks) >= maxAcks {
		g.moreAcks++
		return
	}
	if g.acks == nil {
		g.acks = map[ackKey]int{}
	}
	g.acks[ak]++
}

// events calls r.Events, if any.
func (a *audit) events(yield func(*doorledger.UnlockEvent) error) error {
	if a.r.Events == nil {
		return nil
	}
	return a.r.Events(func(ev *doorledger.UnlockEvent) error {
		if ev == nil {
			return nil
		}
		return yield(ev)
	})
}

// inRange checks that ev belongs to the report: its effective time is in the range.
func (a *audit) inRange(ev *doorledger.UnlockEvent) error {
	if at := ev.EffectiveAt(); at.Before(a.start) || !at.Before(a.end) {
		return fmt.Errorf("unlock event %d occurred at %s, outside the report's range %s to %s", ev.ID, formatUTC(at), a.r.From, a.r.To)
	}
	return nil
}

func eventKey(buf []byte, ev *doorledger.UnlockEvent) []byte {
	buf = buf[:0]
	buf = append(buf, byte(ev.ID>>56), byte(ev.ID>>48), byte(ev.ID>>40), byte(ev.ID>>32), byte(ev.ID>>24), byte(ev.ID>>16), byte(ev.ID>>8), byte(ev.ID))
	n := ev.OccurredAt.UnixNano()
	return append(buf, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// civilDay numbers t's date (as on its clock) from the Unix epoch.
func civilDay(t time.Time) int {
	y, m, d := t.Date()
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}
