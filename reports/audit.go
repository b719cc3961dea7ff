package reports

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/go-pdf/fpdf"
)

// MaxAuditEvents bounds the unlock events one audit report prints. fpdf holds
// a whole document in memory until it writes it (about 1 KB per event: a
// report of 100,000 events peaks near 100 MB and takes about 1.5 s), so a
// longer history is refused with a message asking for a shorter range.
const MaxAuditEvents = 250_000

// AuditReportPDF writes the audit report r of one building over a range of
// dates, every time in the building's time zone and labelled with it:
//
//   - a cover (building, range, who generated it and when, the report id,
//     contents with page numbers, and plain notices for a range without
//     events, a building without devices and a range over a year);
//   - a summary: devices by status, unlocks in total and per device,
//     anomalies by kind, consents ended, disable commands and how long
//     devices took to confirm them;
//   - the device inventory;
//   - the consent evidence of each device (signer and roster title,
//     verification, signing time, IP address, terms hash checked against the
//     terms, the signature image re-validated with imagecheck first), and
//     each withdrawal, dispute and lapse;
//   - the unlock history: a chart of unlocks per day (per week for a range
//     over a year) and every event in a table (time, device, method, actor
//     reference, result, anomalies), written row by row from r.Events;
//   - the anomalies, each with what happened and what was done: the
//     commands sent to its device, the managers' acknowledgements (who,
//     when, their note) and which events are still open;
//   - every command with who requested it, when, and when it was confirmed;
//   - the building's journal;
//   - the signed head of the verifiable log, its verifier key and how to
//     verify.
//
// Every page carries the report id and "Page x of y". The same report
// printed twice gives the same bytes: r.GeneratedAt is the PDF's creation
// date. EINVALID for a bad range and for more than MaxAuditEvents events.
func AuditReportPDF(w io.Writer, r *doorledger.AuditReport) error {
	if r == nil || r.Building == nil {
		return fmt.Errorf("audit report: report and building are required")
	}
	a, err := newAudit(r)
	if err != nil {
		return err
	}
	d := document{
		ID:        "Audit report " + a.id,
		Title:     "Audit report " + a.id + " – " + r.Building.Name,
		CreatedAt: r.GeneratedAt,
	}

	// Pass 1 counts the events and lays the document out to count its
	// pages; the unlock table is laid out from the row heights counted,
	// not drawn. Pass 2 draws it all with the page count in every footer.
	pdf := newDocument(d, 0)
	t, err := a.count(pdf)
	if err != nil {
		return fmt.Errorf("audit report %s: %w", a.id, err)
	}
	if t.events > MaxAuditEvents {
		return doorledger.Errorf(doorledger.EINVALID, "From %s to %s the building has %s unlock events; a report prints at most %s. Choose a shorter range, or export the history as CSV.",
			r.From, r.To, number(t.events), number(MaxAuditEvents))
	}
	p := a.printer(pdf, t, false)
	if err := p.draw(); err != nil {
		return fmt.Errorf("audit report %s: %w", a.id, err)
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("audit report %s: %w", a.id, err)
	}
	pages := pdf.PageCount()

	pdf = newDocument(d, pages)
	p = a.printer(pdf, t, true)
	if err := p.draw(); err != nil {
		return fmt.Errorf("audit report %s: %w", a.id, err)
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("audit report %s: %w", a.id, err)
	}
	if got := pdf.PageCount(); got != pages {
		return fmt.Errorf("audit report %s: page count changed between passes: %d, then %d", a.id, pages, got)
	}
	return pdf.Output(w)
}

// audit is what both passes share: the report, its range, and lookups built
// once.
type audit struct {
	r          *doorledger.AuditReport
	id         string
	loc        *time.Location
	start, end time.Time // the range's instants
	days       int       // dates in the range
	bucketDays int       // dates per bar of the chart: 1, or a multiple of 7 for a range over a year

	devices    map[int64]*doorledger.Device
	labels     map[int64]string                // "#3 SN-…" for the unlock table
	consentsOf map[int64][]*doorledger.Consent // by device id, oldest first
	orphans    []*doorledger.Consent           // consents of devices not in r.Devices
	signatures map[int64]signatureImage        // by consent id, after imagecheck
	imageOf    map[int64]int64                 // consent id → the first consent with the same image
	flagLabels map[string]string               // anomaly kinds → their labels, for the unlock table
	pages      map[string]int                  // first page of each section, from pass 1
}

func newAudit(r *doorledger.AuditReport) (*audit, error) {
	start, end, err := r.Range()
	if err != nil {
		return nil, err
	}
	a := &audit{
		r: r, id: oneLine(r.ID), loc: r.Building.Location(), start: start, end: end, days: r.Days(),
		devices: map[int64]*doorledger.Device{}, labels: map[int64]string{},
		consentsOf: map[int64][]*doorledger.Consent{}, signatures: map[int64]signatureImage{}, imageOf: map[int64]int64{}, flagLabels: map[string]string{}, pages: map[string]int{},
	}
	firstWith := map[string]int64{}
	if a.id == "" {
		a.id = fmt.Sprintf("AR-%d-%s", r.Building.ID, r.GeneratedAt.UTC().Format("20060102T150405Z"))
	}
	a.bucketDays = 1
	if a.days > 366 {
		a.bucketDays = 7 * ((a.days + 7*366 - 1) / (7 * 366)) // weeks, at most 366 bars
	}
	for _, d := range r.Devices {
		if d == nil {
			continue
		}
		a.devices[d.ID] = d
		a.labels[d.ID] = oneLine(fmt.Sprintf("#%d %s", d.ID, d.Serial))
	}
	for _, c := range r.Consents {
		if c == nil {
			continue
		}
		if _, ok := a.devices[c.DeviceID]; ok {
			a.consentsOf[c.DeviceID] = append(a.consentsOf[c.DeviceID], c)
		} else {
			a.orphans = append(a.orphans, c)
		}
		if c.Signature != nil {
			// The stored image reaches fpdf's decoder, so it is
			// validated again here however it was stored.
			var s signatureImage
			s.png, s.err = imagecheck.Signature(c.Signature.SignaturePNG)
			if doorledger.ErrorCode(s.err) == doorledger.ETOOMANY {
				return nil, s.err // busy decoding other images: no report rather than one without its signatures
			}
			a.signatures[c.ID] = s
			// fpdf names an image's resource by its content: the same
			// image registered under two names would be listed twice.
			if id, ok := firstWith[string(s.png)]; ok {
				a.imageOf[c.ID] = id
			} else {
				firstWith[string(s.png)], a.imageOf[c.ID] = c.ID, c.ID
			}
		}
	}
	byRequest := func(x, y *doorledger.Consent) int {
		if c := x.RequestedAt.Compare(y.RequestedAt); c != 0 {
			return c
		}
		return cmpInt(x.ID, y.ID)
	}
	for _, cs := range a.consentsOf {
		slices.SortStableFunc(cs, byRequest)
	}
	slices.SortStableFunc(a.orphans, byRequest)
	return a, nil
}

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

// auditPrinter draws one pass of the report.
type auditPrinter struct {
	printer
	a     *audit
	t     *tally
	final bool // pass 2: the unlock table is drawn from the events
	// seen holds the runes already written to pdf in the regular font
	// through fpdf's own text methods, which register them for the font
	// subset; see rawText.
	seen [1 << 16]bool
	buf  []byte
}

func (a *audit) printer(pdf *fpdf.Fpdf, t *tally, final bool) *auditPrinter {
	return &auditPrinter{printer: printer{pdf: pdf, loc: a.loc}, a: a, t: t, final: final}
}

// Sections, in order.
var sections = []string{
	"Summary", "Device inventory", "Consent evidence", "Unlock history",
	"Anomalies", "Commands", "Journal of actions", "Signed log head and how to verify",
}

func (p *auditPrinter) draw() error {
	p.cover()
	p.summary()
	p.inventory()
	p.evidence()
	if err := p.history(); err != nil {
		return err
	}
	p.anomalies()
	p.commands()
	p.journal()
	p.residentReports()
	p.logHead()
	return nil
}

// section starts a numbered section, on a new page when little of the
// page is left, and records its page in pass 1 for the contents.
func (p *auditPrinter) section(title string) {
	pdf := p.pdf
	if pdf.GetY() > pageHeight-marginBottom-45 {
		pdf.AddPage()
	} else {
		pdf.Ln(5)
	}
	n := slices.Index(sections, title) + 1
	if !p.final {
		p.a.pages[title] = pdf.PageNo()
	}
	pdf.SetFont(fontFamily, "B", 15)
	pdf.CellFormat(contentWidth, 8, fmt.Sprintf("%d. %s", n, title), "", 1, "L", false, 0, "")
	pdf.SetDrawColor(60, 60, 60)
	pdf.SetLineWidth(0.4)
	pdf.Line(marginLeft, pdf.GetY(), pageWidth-marginRight, pdf.GetY())
	pdf.Ln(2)
}

// para prints a wrapped paragraph.
func (p *auditPrinter) para(text string) {
	p.pdf.SetFont(fontFamily, "", 9.5)
	p.pdf.MultiCell(contentWidth, 4.6, oneLine(text), "", "L", false)
	p.pdf.Ln(1)
}

// subheading prints a bold line, keeping it with a few lines after it.
func (p *auditPrinter) subheading(text string) {
	pdf := p.pdf
	if pdf.GetY() > pageHeight-marginBottom-25 {
		pdf.AddPage()
	} else {
		pdf.Ln(2)
	}
	pdf.SetFont(fontFamily, "B", 10.5)
	pdf.MultiCell(contentWidth, 5.5, oneLine(text), "", "L", false)
}

func (p *auditPrinter) cover() {
	pdf, a, r, t := p.pdf, p.a, p.a.r, p.t
	pdf.SetFont(fontFamily, "B", 22)
	pdf.CellFormat(contentWidth, 11, "Building audit report", "", 1, "L", false, 0, "")
	pdf.SetFont(fontFamily, "B", 14)
	pdf.MultiCell(contentWidth, 7, oneLine(r.Building.Name), "", "L", false)
	pdf.SetFont(fontFamily, "", 10)
	pdf.SetTextColor(colorMuted.r, colorMuted.g, colorMuted.b)
	pdf.MultiCell(contentWidth, 5, "Delivery-access devices, the owners' consent to them, and every door they opened, as recorded by Doorledger.", "", "L", false)
	pdf.SetTextColor(0, 0, 0)
	pdf.Ln(3)

	p.field("Building", r.Building.Name)
	p.field("Address", r.Building.Address)
	if tz := a.loc.String(); r.Building.Timezone == tz {
		p.field("Time zone", tz+" — every time in this report is building time, labelled with the zone, unless marked UTC")
	} else {
		p.field("Time zone", r.Building.Timezone+" (not a known zone: times are in "+tz+")")
	}
	p.field("Range", fmt.Sprintf("%s to %s, both included (%s)", r.From, r.To, plural(a.days, "day", "days")))
	p.field("Generated by", r.GeneratedBy)
	p.field("Generated at", p.when(r.GeneratedAt)+" ("+formatUTC(r.GeneratedAt)+")")
	p.field("Report id", a.id)
	p.field("Devices", number(len(a.devices)))
	p.field("Unlock events", number(t.events))

	if len(a.devices) == 0 {
		p.box(colorWarn, "NO DEVICES", "This building has no delivery-access devices registered in Doorledger: there is no inventory, no consent evidence and no command to report.")
	}
	if t.events == 0 {
		p.box(colorWarn, "NO UNLOCK EVENTS", fmt.Sprintf("No door was opened, and no opening refused, by any device of this building from %s to %s (building time).", r.From, r.To))
	}
	if a.days > 366 {
		p.box(colorWarn, "RANGE LONGER THAN A YEAR", fmt.Sprintf("The range is %s long. The chart counts unlocks per %s instead of per day; the tables still list every event.",
			plural(a.days, "day", "days"), bucketName(a.bucketDays)))
	}

	p.heading("Contents")
	pdf.SetFont(fontFamily, "", 10)
	for i, s := range sections {
		page := "…"
		if n, ok := a.pages[s]; ok && p.final {
			page = strconv.Itoa(n)
		}
		pdf.CellFormat(contentWidth-20, 5.5, fmt.Sprintf("%d. %s", i+1, s), "", 0, "L", false, 0, "")
		pdf.CellFormat(20, 5.5, page, "", 1, "R", false, 0, "")
	}
}

func (p *auditPrinter) summary() {
	a, t := p.a, p.t
	p.section("Summary")

	p.heading("Devices by status")
	if len(a.devices) == 0 {
		p.para("This building has no devices.")
	} else {
		counts := map[string]int{}
		var order []doorledger.Standing
		unconsented := 0
		for _, d := range a.r.Devices {
			if d != nil {
				st := a.deviceStatus(d)
				if counts[st.Label] == 0 {
					order = append(order, st)
				}
				counts[st.Label]++
				if d.Unconsented {
					unconsented++
				}
			}
		}
		// The alarming first, then the waiting, then the rest, each by label.
		slices.SortFunc(order, func(x, y doorledger.Standing) int {
			if c := cmpInt(toneRank(x.Tone), toneRank(y.Tone)); c != 0 {
				return c
			}
			return strings.Compare(x.Label, y.Label)
		})
		for _, st := range order {
			p.field(upperFirst(st.Label), number(counts[st.Label]))
		}
		if unconsented > 0 {
			p.field("Flagged unconsented", number(unconsented)+" (seen or found without an active consent)")
		}
		byConsent := map[doorledger.ConsentStatus]int{}
		none := 0
		for _, d := range a.r.Devices {
			if d == nil {
				continue
			}
			if d.ConsentID == 0 {
				none++
			} else {
				byConsent[d.ConsentState]++
			}
		}
		var parts []string
		for _, s := range doorledger.ConsentStatuses {
			if byConsent[s] > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", strings.ToLower(statusLabel(s)), number(byConsent[s])))
			}
		}
		if none > 0 {
			parts = append(parts, "no consent "+number(none))
		}
		p.field("Current consent", strings.Join(parts, ", "))
	}
	removed, differs := 0, 0
	for _, c := range a.r.Consents {
		if c.Status == doorledger.ConsentSigned && c.SignedByRemovedSigner() {
			removed++
		}
		if c.Signature != nil && c.Signature.NameDiffers {
			differs++
		}
	}
	if removed > 0 {
		p.field("Signer since removed", number(removed)+" in force signed by a signer since removed from the roster (valid: they were on the roster when they signed; a manager can ask a current signer to renew)")
	}
	if differs > 0 {
		p.field("Name differs", number(differs)+" signed with a typed name that differs from the roster (the signers confirmed it; see the consent evidence)")
	}

	p.privacy()

	p.heading("Unlocks")
	p.field("Events", fmt.Sprintf("%s: %s granted, %s denied", number(t.events), number(t.granted), number(t.denied)))
	p.field("Anomalous events", number(t.anomalous))
	if t.anomalous > 0 {
		p.field("Still open", fmt.Sprintf("%s (not acknowledged by a manager); %s acknowledged",
			number(t.openAnomalous), number(t.anomalous-t.openAnomalous)))
	}
	if t.events > 0 {
		best, bi := -1, 0
		for i, b := range t.buckets {
			if n := b.granted + b.denied; n > best {
				best, bi = n, i
			}
		}
		p.field("Busiest "+bucketName(a.bucketDays), fmt.Sprintf("%s: %s", p.bucketLabel(bi), plural(best, "event", "events")))
	}
	if t.events > 0 {
		tb := &table{p: p, cols: []column{{"Device", 56, false}, {"Location", 46, false}, {"Granted", 17, true}, {"Denied", 17, true}, {"Anomalous", 21, true}, {"Total", 17, true}}}
		tb.start()
		for _, d := range a.r.Devices {
			if d == nil {
				continue
			}
			c := t.byDevice[d.ID]
			if c == nil {
				c = &deviceCount{}
			}
			tb.row(deviceName(d), d.Location, number(c.granted), number(c.denied), number(c.anomalous), number(c.granted+c.denied))
		}
		var others []int64
		for id := range t.byDevice {
			if _, ok := a.devices[id]; !ok && id != 0 {
				others = append(others, id)
			}
		}
		slices.Sort(others)
		for _, id := range others {
			c := t.byDevice[id]
			tb.row(fmt.Sprintf("#%d (not in the inventory)", id), "", number(c.granted), number(c.denied), number(c.anomalous), number(c.granted+c.denied))
		}
		if c := t.byDevice[0]; c != nil {
			refs := plural(len(t.unknownRefs), "reference", "references")
			if len(t.unknownRefs) >= maxGroups {
				refs = "at least " + refs
			}
			tb.row("Unregistered devices ("+refs+")", "", number(c.granted), number(c.denied), number(c.anomalous), number(c.granted+c.denied))
		}
		tb.row("All devices", "", number(t.granted), number(t.denied), number(t.anomalous), number(t.events))
	}

	p.heading("Anomalies by kind")
	if t.anomalous == 0 {
		p.para("No event in this range was flagged.")
	} else {
		tb := &table{p: p, cols: []column{{"Kind", 36, false}, {"Events", 18, true}, {"Each of these events…", 120, false}}}
		tb.start()
		for _, k := range kinds(t.byKind) {
			tb.row(kindLabel(k), number(t.byKind[k]), anomalyMeaning(k))
		}
	}

	p.heading("Consents ended")
	ended := map[doorledger.ConsentStatus]int{}
	for _, c := range a.r.Consents {
		if c != nil && !c.StatusAt.IsZero() && !c.StatusAt.Before(a.start) && c.StatusAt.Before(a.end) {
			switch c.Status {
			case doorledger.ConsentWithdrawn, doorledger.ConsentDisputed, doorledger.ConsentLapsed, doorledger.ConsentDeclined:
				ended[c.Status]++
			}
		}
	}
	p.field("Withdrawn in the range", number(ended[doorledger.ConsentWithdrawn]))
	p.field("Disputed in the range", number(ended[doorledger.ConsentDisputed]))
	p.field("Lapsed in the range", number(ended[doorledger.ConsentLapsed]))
	p.field("Declined in the range", number(ended[doorledger.ConsentDeclined]))

	p.paperDisputes()
	p.heading("Revocations (disable commands)")
	var n, open, refused int
	var lat []time.Duration
	for _, c := range a.r.Commands {
		if c == nil || c.State != doorledger.StateDisabled {
			continue
		}
		n++
		switch {
		case c.Status == doorledger.CommandRefused:
			refused++
		case c.Status == doorledger.CommandConfirmed:
			lat = append(lat, c.Latency())
		case c.Status != doorledger.CommandSuperseded:
			open++
		}
	}
	p.field("Disable commands", number(n))
	p.field("Confirmed by the device", number(len(lat)))
	if len(lat) > 0 {
		slices.Sort(lat)
		p.field("Time to confirm", fmt.Sprintf("median %s, slowest %s", duration(lat[len(lat)/2]), duration(lat[len(lat)-1])))
	}
	if refused > 0 {
		p.field("REFUSED by the device", number(refused)+" (the device received the disable and reported it is still enabled)")
	}
	p.field("Not confirmed", number(open))
}

// deviceStatus is a device's status as the portal's pages show it
// (doorledger.Device.Status), at the report's generation; a retired device
// is retired, whatever it was last told.
func (a *audit) deviceStatus(d *doorledger.Device) doorledger.Standing {
	if d.Retired {
		return doorledger.Standing{Code: "retired", Label: "retired", Tone: doorledger.ToneNone}
	}
	return d.Status(a.r.GeneratedAt, 0)
}

// toneRank orders tones from the most alarming.
func toneRank(t doorledger.Tone) int64 {
	switch t {
	case doorledger.ToneAlarm:
		return 0
	case doorledger.ToneWarn:
		return 1
	case doorledger.ToneOK:
		return 2
	}
	return 3
}

func (p *auditPrinter) inventory() {
	a := p.a
	p.section("Device inventory")
	if len(a.devices) == 0 {
		p.para("This building has no devices.")
		return
	}
	tb := &table{p: p, cols: []column{{"#", 8, false}, {"Vendor and model", 27, false}, {"Serial", 27, false}, {"Location", 28, false},
		{"Installer", 25, false}, {"Consent", 25, false}, {"State and dates", 34, false}}}
	tb.start()
	for _, d := range a.r.Devices {
		if d == nil {
			continue
		}
		installer := d.Installer
		if installer == "" {
			installer = "none (found in a panel)"
		} else if d.Company != "" {
			installer += " (" + d.Company + ")"
		}
		consent := "none"
		if d.ConsentID != 0 {
			consent = fmt.Sprintf("#%d %s", d.ConsentID, strings.ToLower(statusLabel(d.ConsentState)))
		}
		if d.Unconsented {
			consent += "\nFLAGGED UNCONSENTED"
		}
		told := "told: nothing yet"
		if d.DesiredVersion > 0 {
			told = fmt.Sprintf("told: %s (v%d)", d.DesiredState, d.DesiredVersion)
		}
		says := "says: nothing yet"
		if d.ReportedState != "" {
			says = fmt.Sprintf("says: %s (v%d)", d.ReportedState, d.ReportedVersion)
		}
		st := a.deviceStatus(d)
		state := told + "\n" + says + "\n" + st.Label + "\ninstalled " + p.date(d.CreatedAt) + "\nlast seen " + p.whenOr(d.LastSeenAt, "never")
		if d.Retired {
			state = "RETIRED\n" + state
		}
		tb.rowTone(st.Tone, strconv.FormatInt(d.ID, 10), d.Vendor+" "+d.Model, d.Serial, d.Location, installer, consent, state)
	}
}

func (p *auditPrinter) evidence() {
	a := p.a
	p.section("Consent evidence")
	if len(a.devices) == 0 && len(a.orphans) == 0 {
		p.para("There are no devices, so no consents.")
		return
	}
	for _, d := range a.r.Devices {
		if d == nil {
			continue
		}
		p.heading(fmt.Sprintf("Device #%d · %s · serial %s", d.ID, strings.TrimSpace(d.Vendor+" "+d.Model), d.Serial))
		cs := a.consentsOf[d.ID]
		if d.Unconsented {
			p.box(colorAlert, "FLAGGED UNCONSENTED", "This device was seen or found without an active consent from an authorized signer.")
		}
		if len(cs) == 0 {
			p.para("No consent was ever requested for this device.")
		}
		for _, c := range cs {
			p.consent(c)
		}
	}
	if len(a.orphans) > 0 {
		p.heading("Consents of devices not in the inventory")
		for _, c := range a.orphans {
			p.consent(c)
		}
	}
}

func (p *auditPrinter) consent(c *doorledger.Consent) {
	s := c.Signature
	head := fmt.Sprintf("Consent #%d — %s", c.ID, statusLabel(c.Status))
	if s == nil {
		head += " — NOT SIGNED"
	}
	p.subheading(head)
	p.field("Signer (from the roster)", c.Signer.Name)
	p.field("Roster title", c.Signer.Title)
	if c.SignedByRemovedSigner() {
		p.field("Flag", "signed by a signer since "+removedWords(c.Signer)+"; valid, as they were on the roster when they signed")
	} else if !c.Signer.Active {
		p.field("On the roster now", rosterNow(c))
	}
	p.field("Installer", strings.TrimSpace(c.Installer+" "+parens(c.Company)))
	p.field("Requested at", p.when(c.RequestedAt))
	if s == nil {
		p.field("Signature", "None: this consent was never signed, and there is no evidence.")
	} else {
		p.field("Typed name", s.TypedName)
		if s.NameDiffers {
			p.field("Name check", nameCheck(s))
		}
		p.field("Verification", methodLabel(s.Method))
		p.field("Signed at", p.when(s.SignedAt)+" ("+formatUTC(s.SignedAt)+")")
		p.field("IP address", s.IP)
		p.fieldSized("Terms SHA-256", strings.ToLower(s.TermsSHA256), 8)
		sum := sha256.Sum256([]byte(s.Terms))
		if strings.EqualFold(hex.EncodeToString(sum[:]), s.TermsSHA256) {
			p.field("Terms check", "The stored terms hash to this SHA-256.")
		} else {
			p.field("Terms check", "WARNING: the stored terms do NOT hash to this SHA-256.")
		}
		if !c.ExpiresAt.IsZero() {
			p.field("Lapses at", p.when(c.ExpiresAt))
		}
		p.signature(p.a.imageOf[c.ID], p.a.signatures[c.ID])
	}
	switch c.Status {
	case doorledger.ConsentWithdrawn, doorledger.ConsentDisputed, doorledger.ConsentLapsed, doorledger.ConsentDeclined:
		note := c.StatusNote
		if strings.TrimSpace(note) == "" {
			note = "(no note recorded)"
		}
		p.field(statusLabel(c.Status)+" at", p.when(c.StatusAt))
		p.field("Note", note)
	}
	p.paperForm(c)
}

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

// chart draws the unlocks of each day (or week) as stacked bars, granted
// under denied, with the anomalous ones in a band of their own below.
func (p *auditPrinter) chart() {
	pdf, a, t := p.pdf, p.a, p.t
	const (
		barsH  = 46.0 // the bars' area
		anomH  = 7.0  // the anomalies' band
		axisW  = 14.0 // room for the scale, left of the bars
		labelH = 5.0  // dates under the bars
	)
	if pdf.GetY()+12+barsH+anomH+labelH+12 > pageHeight-marginBottom {
		pdf.AddPage()
	}
	pdf.SetFont(fontFamily, "B", 10)
	pdf.CellFormat(contentWidth, 6, "Unlocks per "+bucketName(a.bucketDays)+" (building time)", "", 1, "L", false, 0, "")

	// Legend.
	pdf.SetFont(fontFamily, "", 8)
	x := marginLeft
	for _, l := range []struct {
		c    rgb
		text string
	}{{colorGranted, "granted"}, {colorDenied, "denied"}, {colorAnomaly, "anomalous (in the band below the dates)"}} {
		pdf.SetFillColor(l.c.r, l.c.g, l.c.b)
		pdf.Rect(x, pdf.GetY()+1, 3, 3, "F")
		w := pdf.GetStringWidth(l.text) + 4
		pdf.SetXY(x+4, pdf.GetY())
		pdf.CellFormat(w, 5, l.text, "", 0, "L", false, 0, "")
		x += 4 + w + 4
	}
	pdf.Ln(7)

	top := pdf.GetY()
	x0, plotW := marginLeft+axisW, contentWidth-axisW
	base := top + barsH
	most, mostAnom := 0, 0
	for _, b := range t.buckets {
		most = max(most, b.granted+b.denied)
		mostAnom = max(mostAnom, b.anomalous)
	}
	scale := niceCeil(most)

	// Scale and grid lines.
	pdf.SetDrawColor(210, 210, 210)
	pdf.SetLineWidth(0.15)
	pdf.SetFont(fontFamily, "", 7)
	for _, v := range []int{0, scale / 2, scale} {
		y := base - float64(v)/float64(scale)*barsH
		pdf.Line(x0, y, x0+plotW, y)
		pdf.SetXY(marginLeft, y-2)
		pdf.CellFormat(axisW-1.5, 4, number(v), "", 0, "R", false, 0, "")
	}

	// Bars.
	n := len(t.buckets)
	bw := plotW / float64(n)
	gap := 0.0
	if bw > 1.2 {
		gap = bw * 0.2
	}
	for i, b := range t.buckets {
		bx := x0 + float64(i)*bw + gap/2
		hg := float64(b.granted) / float64(scale) * barsH
		hd := float64(b.denied) / float64(scale) * barsH
		if hg > 0 {
			pdf.SetFillColor(colorGranted.r, colorGranted.g, colorGranted.b)
			pdf.Rect(bx, base-hg, bw-gap, hg, "F")
		}
		if hd > 0 {
			pdf.SetFillColor(colorDenied.r, colorDenied.g, colorDenied.b)
			pdf.Rect(bx, base-hg-hd, bw-gap, hd, "F")
		}
	}
	pdf.SetDrawColor(90, 90, 90)
	pdf.SetLineWidth(0.25)
	pdf.Line(x0, base, x0+plotW, base)

	// Dates under the bars: at most seven, evenly spaced.
	pdf.SetFont(fontFamily, "", 6.5)
	ticks := min(n, 7)
	for k := 0; k < ticks; k++ {
		i := 0
		if ticks > 1 {
			i = k * (n - 1) / (ticks - 1)
		}
		cx := x0 + (float64(i)+0.5)*bw
		label := a.start.AddDate(0, 0, i*a.bucketDays).Format("2006-01-02")
		w := 20.0
		lx := math.Min(math.Max(cx-w/2, x0-3), x0+plotW-w+3)
		pdf.SetXY(lx, base+0.8)
		pdf.CellFormat(w, 3.5, label, "", 0, "C", false, 0, "")
	}

	// The anomalies' band.
	bandTop := base + labelH
	pdf.SetFont(fontFamily, "", 7)
	pdf.SetXY(marginLeft, bandTop+anomH/2-2)
	pdf.CellFormat(axisW-1.5, 4, number(mostAnom), "", 0, "R", false, 0, "")
	pdf.SetDrawColor(210, 210, 210)
	pdf.SetLineWidth(0.15)
	pdf.Line(x0, bandTop+anomH, x0+plotW, bandTop+anomH)
	if mostAnom > 0 {
		pdf.SetFillColor(colorAnomaly.r, colorAnomaly.g, colorAnomaly.b)
		for i, b := range t.buckets {
			if b.anomalous > 0 {
				h := math.Max(float64(b.anomalous)/float64(mostAnom)*anomH, 0.4)
				pdf.Rect(x0+float64(i)*bw+gap/2, bandTop+anomH-h, bw-gap, h, "F")
			}
		}
	}
	pdf.SetY(bandTop + anomH + 3)
	pdf.SetFont(fontFamily, "", 8)
	pdf.SetTextColor(colorMuted.r, colorMuted.g, colorMuted.b)
	pdf.CellFormat(contentWidth, 4, fmt.Sprintf("%s bars from %s to %s; the tallest counts %s.", number(n), a.r.From, a.r.To, plural(most, "event", "events")), "", 1, "L", false, 0, "")
	pdf.SetTextColor(0, 0, 0)
}

var (
	colorGranted = rgb{52, 101, 164}
	colorDenied  = rgb{237, 160, 60}
	colorAnomaly = rgb{200, 40, 40}
)

// niceCeil returns the top of a scale for values up to n: twice a step of
// 1, 2 or 5 times a power of ten, so the middle grid line is a round number.
func niceCeil(n int) int {
	half := max((n+1)/2, 1)
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= half {
				return 2 * m * p
			}
		}
	}
}

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

func (p *auditPrinter) commands() {
	a := p.a
	p.section("Commands")
	if len(a.r.Commands) == 0 {
		p.para("No device was told to enable or disable in this range.")
		return
	}
	p.para("Every enable and disable sent to a device of the building in the range, with who asked and when the device confirmed it.")
	tb := &table{p: p, cols: []column{{"Requested at", 30, false}, {"Device", 24, false}, {"Command", 20, false}, {"Requested by", 30, false},
		{"Confirmed", 34, false}, {"Reason", 36, false}}}
	tb.start()
	for _, c := range a.r.Commands {
		if c == nil {
			continue
		}
		st := c.Status.Describe(c.State)
		confirmed := st.Label
		if c.Status == doorledger.CommandConfirmed {
			confirmed = p.when(c.ConfirmedAt) + "\nafter " + duration(c.Latency())
		} else if c.Attempts > 0 {
			confirmed += fmt.Sprintf("\n%s sent", plural(c.Attempts, "time", "times"))
			if c.LastError != "" {
				confirmed += "; last error: " + c.LastError
			}
		}
		if !c.RefusedAt.IsZero() {
			confirmed += "\nrefused by the device at " + p.when(c.RefusedAt)
		}
		tb.rowTone(st.Tone, p.when(c.RequestedAt), p.deviceLabel(c.DeviceID, ""), fmt.Sprintf("%s (#%d, v%d)", verb(c.State), c.ID, c.Version), c.RequestedBy, confirmed, c.Reason)
	}
}

func (p *auditPrinter) journal() {
	a := p.a
	p.section("Journal of actions")
	if len(a.r.AuditEntries) == 0 {
		p.para("No action was recorded in the building's journal in this range.")
		return
	}
	p.para("Every action recorded in the building's append-only journal in the range: who did what, from where. Each entry, as recorded, is in the evidence bundle's audit.jsonl with its proof in the tamper-evident log.")
	// A sentence may be long (a manager's note): up to 60 lines, which
	// still fit a page, rather than cut.
	tb := &table{p: p, maxLines: 60, cols: []column{{"Time", 30, false}, {"Who", 36, false}, {"What happened", 88, false},
		{"IP", 20, false}}}
	tb.start()
	for _, e := range a.r.AuditEntries {
		if e == nil {
			continue
		}
		tb.row(p.when(e.At), e.Actor, doorledger.AuditSentence(e), e.IP)
	}
}

func (p *auditPrinter) logHead() {
	a, pdf := p.a, p.pdf
	p.section("Signed log head and how to verify")
	h := a.r.LogHead
	if h == nil {
		p.box(colorWarn, "NO SIGNED HEAD", "No signed head of the verifiable log was available when this report was generated, so it cannot yet be checked against one.")
	} else {
		p.para("Every journal entry and every unlock event is appended, in order, to a Merkle tree log (as in Certificate Transparency). The head below is the tree of the log's first entries when this report was generated, signed with the portal's Ed25519 key.")
		if o := h.Origin(); o != "" {
			p.fieldSized("Log origin", o, 8)
		}
		p.field("Entries covered", number64(h.Size))
		p.fieldSized("Root hash (SHA-256)", h.Root.String(), 8)
		p.field("Signed at", p.when(h.At)+" ("+formatUTC(h.At)+")")
		p.fieldSized("Verifier key", a.r.VerifierKey, 8)
		if h.Origin() != "" {
			p.heading("Signed checkpoint (C2SP tlog-checkpoint)")
		} else {
			p.heading("Signed note (signed before checkpoints)")
		}
		pdf.SetFont(fontFamily, "", 8)
		note := multiLine(h.Note)
		if note == "" {
			note = "(empty)"
		}
		pdf.MultiCell(contentWidth, 3.8, note, "1", "L", false)
	}
	p.heading("How to verify")
	key := a.r.VerifierKey
	if key == "" {
		key = "KEY"
	}
	for i, s := range []string{
		"Keep this report, and keep the verifier key above apart from the portal: whoever could rewrite the portal's database could replace the key stored with it too.",
		"On the portal's server, run: portal audit verify -data DIR -key " + key + " — it recomputes the log from the database, checks every signed head with this key, and exits non-zero naming the first entry that was changed, removed or reordered.",
		"Or open the portal's \"Verify a report\" page and give it this report's signed note: it checks the note's signature with the verifier key, and that the log the portal holds today still holds, unchanged, the entries this head covers.",
		"The signed head is a C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint: the log's origin, its size, its root hash), signed as a standard note (golang.org/x/mod/sumdb/note): any note verifier or transparency-log tool checks it with the verifier key alone.",
	} {
		pdf.SetFont(fontFamily, "", 9.5)
		y := pdf.GetY()
		pdf.CellFormat(6, 4.6, strconv.Itoa(i+1)+".", "", 0, "L", false, 0, "")
		pdf.SetXY(marginLeft+6, y)
		pdf.MultiCell(contentWidth-6, 4.6, oneLine(s), "", "L", false)
		pdf.Ln(1)
	}
}

// deviceLabel names a device for a table or a heading.
func (p *auditPrinter) deviceLabel(id int64, ref string) string {
	if id == 0 {
		return "Unregistered device calling itself “" + oneLine(ref) + "”"
	}
	if d := p.a.devices[id]; d != nil {
		return deviceName(d)
	}
	return fmt.Sprintf("#%d (not in the inventory)", id)
}

func deviceName(d *doorledger.Device) string {
	return fmt.Sprintf("#%d %s %s · %s", d.ID, d.Vendor, d.Model, d.Serial)
}

// when formats t in the building's time zone, labelled with its abbreviation.
func (p *auditPrinter) when(t time.Time) string { return p.whenOr(t, "not recorded") }

func (p *auditPrinter) whenOr(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.In(p.loc).Format("2006-01-02 15:04:05 MST")
}

func (p *auditPrinter) date(t time.Time) string {
	if t.IsZero() {
		return "not recorded"
	}
	return t.In(p.loc).Format("2006-01-02")
}

func (p *auditPrinter) bucketLabel(i int) string {
	from := p.a.start.AddDate(0, 0, i*p.a.bucketDays)
	if p.a.bucketDays == 1 {
		return from.Format("2006-01-02")
	}
	to := from.AddDate(0, 0, p.a.bucketDays-1)
	if last := p.a.end.AddDate(0, 0, -1); to.After(last) {
		to = last
	}
	return from.Format("2006-01-02") + " to " + to.Format("2006-01-02")
}

func bucketName(days int) string {
	switch days {
	case 1:
		return "day"
	case 7:
		return "week"
	}
	return strconv.Itoa(days/7) + " weeks"
}

// A table prints rows of wrapped cells, repeating its header on each page.
// Rows are written with rawText: see there.
type table struct {
	p     *auditPrinter
	cols  []column
	cells []string   // scratch for the caller's cells
	split [][]string // the lines of each cell of the row being laid out
	rows  int
	// maxLines bounds a cell's lines (0: maxCellLines); a row must fit a page.
	maxLines int
}

type column struct {
	title string
	width float64
	right bool // numbers
}

// Table metrics, in millimetres.
const (
	tableFont     = 7.0  // points
	tableLine     = 2.9  // height of a line of text
	tablePad      = 0.4  // above and below a row's lines
	tableBaseline = 2.25 // from a line's top to its baseline
	maxCellLines  = 12   // longer cells end in "…" (a row always fits a page)
)

// start prints the header, on a new page unless it and a row fit here.
func (tb *table) start() {
	if tb.p.pdf.GetY()+2*(2*tablePad+2*tableLine) > pageHeight-marginBottom {
		tb.p.pdf.AddPage()
	}
	tb.header()
}

func (tb *table) header() {
	pdf := tb.p.pdf
	pdf.SetFont(fontFamily, "B", tableFont)
	lines := 1
	for _, c := range tb.cols {
		lines = max(lines, len(pdf.SplitText(c.title, c.width)))
	}
	y, h := pdf.GetY(), float64(lines)*tableLine+2*tablePad
	pdf.SetFillColor(232, 232, 232)
	pdf.Rect(marginLeft, y, contentWidth, h, "F")
	x := marginLeft
	for _, c := range tb.cols {
		for i, l := range pdf.SplitText(c.title, c.width) {
			lx := x + pdf.GetCellMargin()
			if c.right {
				lx = x + c.width - pdf.GetCellMargin() - pdf.GetStringWidth(l)
			}
			pdf.Text(lx, y+tablePad+float64(i)*tableLine+tableBaseline, l)
		}
		x += c.width
	}
	pdf.SetFillColor(255, 255, 255)
	pdf.SetY(y + h)
	pdf.SetFont(fontFamily, "", tableFont)
}

// row lays out, places and draws one row.
func (tb *table) row(cells ...string) { tb.rowTone(doorledger.ToneNone, cells...) }

// rowTone is row on a light red band when tone is an alarm (a refused or
// unconfirmed command, a device that refused), as the portal shows it red.
func (tb *table) rowTone(tone doorledger.Tone, cells ...string) {
	for i := range cells {
		cells[i] = cellText(cells[i])
	}
	n := tb.layout(cells)
	y := tb.place(n)
	band := bandNone
	switch {
	case tone == doorledger.ToneAlarm:
		band = bandAlarm
	case tb.rows%2 == 1:
		band = bandShade
	}
	tb.draw(y, n, band)
	tb.rows++
}

// Row bands: none, the light grey of every other row, and the alarm's red.
const (
	bandNone = iota
	bandShade
	bandAlarm
)

// layout splits cells into lines to fit their columns, in the table's font
// (which must be selected: header selects it), and returns the row's number
// of lines. Cells must be clean (cellText).
func (tb *table) layout(cells []string) int {
	pdf := tb.p.pdf
	if len(tb.split) < len(tb.cols) {
		tb.split = make([][]string, len(tb.cols))
	}
	lines := 1
	for i, c := range tb.cols {
		s := ""
		if i < len(cells) {
			s = cells[i]
		}
		tb.split[i] = tb.split[i][:0]
		switch {
		case s == "":
		case strings.IndexByte(s, '\n') < 0 && pdf.GetStringWidth(s) <= c.width-2*pdf.GetCellMargin():
			tb.split[i] = append(tb.split[i], s)
		default:
			for _, part := range strings.Split(s, "\n") {
				tb.split[i] = append(tb.split[i], pdf.SplitText(part, c.width)...)
			}
			if m := cmp.Or(tb.maxLines, maxCellLines); len(tb.split[i]) > m {
				tb.split[i] = tb.split[i][:m]
				tb.split[i][m-1] += "…"
			}
		}
		lines = max(lines, len(tb.split[i]))
	}
	return lines
}

// place makes room for a row of n lines, on a new page (with the header)
// if it does not fit here, and returns its top.
func (tb *table) place(n int) float64 {
	pdf := tb.p.pdf
	h := float64(n)*tableLine + 2*tablePad
	if pdf.GetY()+h > pageHeight-marginBottom {
		pdf.AddPage()
		tb.header()
	}
	y := pdf.GetY()
	pdf.SetY(y + h)
	return y
}

// draw writes the laid-out row of n lines at y, on band.
func (tb *table) draw(y float64, n int, band int) {
	p := tb.p
	k := p.pdf.GetConversionRatio()
	m := p.pdf.GetCellMargin()
	if band != bandNone { // first: text may be written right away (see rawText)
		fill := "q 0.965 g "
		if band == bandAlarm {
			fill = "q 0.984 0.878 0.878 rg " // colorAlert
		}
		b := append(p.buf[:0], fill...)
		b = appendPt(b, marginLeft*k)
		b = appendPt(b, (pageHeight-y)*k)
		b = appendPt(b, contentWidth*k)
		b = appendPt(b, -(float64(n)*tableLine+2*tablePad)*k)
		b = append(b, "re f Q"...)
		p.pdf.RawWriteBuf(bytes.NewReader(b))
		p.buf = b
	}
	t := rawText{p: p, b: append(p.buf[:0], "q 0 g BT"...)}
	x := marginLeft
	for i, c := range tb.cols {
		for j, l := range tb.split[i] {
			lx := x + m
			if c.right {
				lx = x + c.width - m - p.pdf.GetStringWidth(l)
			}
			t.text(lx*k, (pageHeight-y-tablePad-float64(j)*tableLine-tableBaseline)*k, l)
		}
		x += c.width
	}
	p.buf = append(t.b, " ET Q"...)
	p.pdf.RawWriteBuf(bytes.NewReader(p.buf))
}

// rawText builds the content-stream operators of a table row: one text
// object in which each piece of text is moved to relative to the last (Td)
// and shown (Tj) in the font fpdf last selected, which a page break
// re-selects.
//
// fpdf formats every text operation with fmt and records each rune of it in
// a map for the font subset, which makes a 100,000-row table take seconds.
// So a rune is written through fpdf's Text the first time (that puts it in
// the subset), and afterwards here: as a CID string of UTF-16 code units,
// which is what fpdf writes for a UTF-8 font, in a literal string with
// ( ) \ and line ends escaped.
type rawText struct {
	p    *auditPrinter
	b    []byte
	x, y int64 // where the last Td moved to, in hundredths of a point
}

// text shows s with its baseline's left end at (x, y), in points from the
// bottom left of the page.
func (t *rawText) text(x, y float64, s string) {
	p := t.p
	for _, r := range s {
		if r > 0xffff || !p.seen[r] {
			k := p.pdf.GetConversionRatio()
			p.pdf.SetTextColor(0, 0, 0)
			p.pdf.Text(x/k, pageHeight-y/k, s)
			for _, r := range s {
				if r <= 0xffff {
					p.seen[r] = true
				}
			}
			return
		}
	}
	nx, ny := int64(math.Round(x*100)), int64(math.Round(y*100))
	t.b = append(t.b, ' ')
	t.b = appendHundredths(t.b, nx-t.x)
	t.b = append(t.b, ' ')
	t.b = appendHundredths(t.b, ny-t.y)
	t.b = append(t.b, " Td ("...)
	t.x, t.y = nx, ny
	for _, r := range s {
		for _, c := range [2]byte{byte(r >> 8), byte(r)} {
			switch c {
			case '(', ')', '\\':
				t.b = append(t.b, '\\', c)
			case '\r':
				t.b = append(t.b, '\\', 'r')
			case '\n':
				t.b = append(t.b, '\\', 'n')
			default:
				t.b = append(t.b, c)
			}
		}
	}
	t.b = append(t.b, ")Tj"...)
}

// appendHundredths appends v/100 with at most two decimals.
func appendHundredths(b []byte, v int64) []byte {
	if v < 0 {
		b, v = append(b, '-'), -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	if f := v % 100; f != 0 {
		b = append(b, '.', byte('0'+f/10))
		if f%10 != 0 {
			b = append(b, byte('0'+f%10))
		}
	}
	return b
}

// appendPt appends v with two decimals and a space.
func appendPt(b []byte, v float64) []byte {
	return append(strconv.AppendFloat(b, v, 'f', 2, 64), ' ')
}

// cellText is oneLine for a table cell, keeping the line breaks a cell
// asks for, and skipping the work for plain ASCII.
func cellText(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' || c > 0x7e || c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ') {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = oneLine(l)
	}
	return strings.Join(lines, "\n")
}

func kinds(m map[string]int) []string {
	var ks []string
	for _, k := range doorledger.AnomalyKinds {
		if m[k] > 0 {
			ks = append(ks, k)
		}
	}
	var other []string
	for k := range m {
		if !slices.Contains(doorledger.AnomalyKinds, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	return append(ks, other...)
}

func kindLabel(k string) string { return strings.ReplaceAll(oneLine(k), "_", " ") }

func anomalyMeaning(k string) string {
	if d := doorledger.AnomalyDescription(k); d != "" {
		return d
	}
	return "carries a flag this version of Doorledger does not describe"
}

func verb(s doorledger.DeviceState) string {
	switch s {
	case doorledger.StateEnabled:
		return "enable"
	case doorledger.StateDisabled:
		return "disable"
	}
	return oneLine(string(s))
}

func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// number formats n with thousands separators: 100,000.
func number(n int) string { return number64(int64(n)) }

func number64(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return number(n) + " " + many
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func parens(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return "(" + s + ")"
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
