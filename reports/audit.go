package reports

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
)

// MaxAuditEvents bounds the unlock events one audit report prints. fpdf holds
// a whole document in memory until it writes it (its memory and time grow
// with every event: docs/benchmarks.md), so a longer history is refused with
// a message asking for a shorter range.
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
