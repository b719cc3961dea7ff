package reports

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// csvTime is how the CSV files write times: the building's wall clock with
// its UTC offset (so that the repeated hour of a DST change stays
// unambiguous) and the fraction of a second only when there is one.
const csvTime = "2006-01-02T15:04:05.999999Z07:00"

// AuditReportCSV writes the unlock events of the audit report r as CSV: the
// events of the PDF's unlock table (AuditReportPDF), oldest first, one row
// each, after a header row. Columns:
//
//	occurred_at (<zone>)   the device's time, in the building's time zone, with its offset
//	device_id              empty for a device the portal does not know
//	device                 as the PDF names it: "#3 SN-…", or "unregistered: <its reference>"
//	method, actor_ref, result
//	anomalies              the PDF's labels, as in "after revocation, without consent"
//	event_id               the device's own id of the event
//	received_at (<zone>)   when the portal received it
//	unlock_id              the portal's id of the event: its entry in the verifiable log is "unlock #<id>"
//	source                 mqtt, http or csv
//	acknowledged_at (<zone>)  when a manager acknowledged the event's anomalies; empty while open (or not flagged)
//	acknowledged_by        who acknowledged them, as the journal names them
//	ack_note               what was done, in their words
//	effective_at (<zone>)  when the event counts as having happened, which orders the file and
//	                       places it in the range: occurred_at, or received_at when the
//	                       device's clock was flagged skewed (UnlockEvent.EffectiveAt)
//
// <zone> is the building's IANA time zone, e.g. "occurred_at (Europe/Zurich)".
// A cell that starts with = + - @, a tab or a carriage return is prefixed with
// ' so that a spreadsheet opening the file reads text, not a formula. The
// events are written as r.Events yields them, so memory stays constant; the
// same report gives the same bytes. EINVALID for a bad range; an event
// outside the range is an error, as in the PDF.
func AuditReportCSV(w io.Writer, r *doorledger.AuditReport) error {
	if r == nil || r.Building == nil {
		return fmt.Errorf("audit report csv: report and building are required")
	}
	start, end, err := r.Range()
	if err != nil {
		return err
	}
	loc := r.Building.Location()
	zone := loc.String()
	labels := deviceLabels(r.Devices)
	flags := map[string]string{} // anomaly combinations → their labels (few occur)

	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	header := []string{"occurred_at (" + zone + ")", "device_id", "device", "method", "actor_ref", "result", "anomalies",
		"event_id", "received_at (" + zone + ")", "unlock_id", "source",
		"acknowledged_at (" + zone + ")", "acknowledged_by", "ack_note", "effective_at (" + zone + ")"}
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	var buf []byte // scratch for the times
	if r.Events != nil {
		err = r.Events(func(ev *doorledger.UnlockEvent) error {
			if ev == nil {
				return nil
			}
			at := ev.EffectiveAt()
			if at.Before(start) || !at.Before(end) {
				return fmt.Errorf("unlock event %d occurred at %s, outside the report's range %s to %s", ev.ID, formatUTC(at), r.From, r.To)
			}
			buf = ev.OccurredAt.In(loc).AppendFormat(buf[:0], csvTime)
			rec[0] = string(buf)
			rec[1], rec[2] = "", labels[ev.DeviceID]
			switch {
			case ev.DeviceID == 0:
				rec[2] = "unregistered: " + ev.DeviceRef
			case rec[2] == "":
				rec[1] = strconv.FormatInt(ev.DeviceID, 10)
				rec[2] = "#" + rec[1]
			default:
				rec[1] = strconv.FormatInt(ev.DeviceID, 10)
			}
			rec[3], rec[4], rec[5] = safeCell(ev.Method), safeCell(ev.ActorRef), safeCell(string(ev.Result))
			rec[6] = safeCell(flagLabels(flags, ev.Anomalies))
			rec[7] = safeCell(ev.EventID)
			rec[8] = ""
			if !ev.ReceivedAt.IsZero() {
				buf = ev.ReceivedAt.In(loc).AppendFormat(buf[:0], csvTime)
				rec[8] = string(buf)
			}
			rec[9] = strconv.FormatInt(ev.ID, 10)
			rec[10] = safeCell(ev.Source)
			rec[11], rec[12], rec[13] = "", "", ""
			if ev.Acknowledged() {
				buf = ev.AcknowledgedAt.In(loc).AppendFormat(buf[:0], csvTime)
				rec[11], rec[12], rec[13] = string(buf), safeCell(ev.AcknowledgedBy), safeCell(ev.AckNote)
			}
			buf = at.In(loc).AppendFormat(buf[:0], csvTime)
			rec[14] = string(buf)
			rec[2] = safeCell(rec[2])
			return cw.Write(rec)
		})
		if err != nil {
			return fmt.Errorf("audit report csv %s: %w", r.ID, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// deviceLabels names each device as the PDF's unlock table does.
func deviceLabels(devices []*doorledger.Device) map[int64]string {
	labels := make(map[int64]string, len(devices))
	for _, d := range devices {
		if d != nil {
			labels[d.ID] = oneLine(fmt.Sprintf("#%d %s", d.ID, d.Serial))
		}
	}
	return labels
}

// flagLabels labels an event's anomalies as the PDF does, remembering the
// labels of the few combinations that occur (at most 1,000).
func flagLabels(cache map[string]string, kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	key := strings.Join(kinds, "\x00")
	if l, ok := cache[key]; ok {
		return l
	}
	labels := make([]string, len(kinds))
	for i, k := range kinds {
		labels[i] = kindLabel(k)
	}
	l := strings.Join(labels, ", ")
	if len(cache) < 1000 {
		cache[key] = l
	}
	return l
}

// safeCell defuses text that a spreadsheet would read as a formula: a cell
// starting with = + - @, a tab or a carriage return gets a leading '.
func safeCell(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// commandsCSV writes r's commands as CSV, in the order of r.Commands (oldest
// first), every time in the building's time zone with its offset.
func commandsCSV(w io.Writer, r *doorledger.AuditReport) error {
	loc := r.Building.Location()
	zone := loc.String()
	labels := deviceLabels(r.Devices)
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(loc).Format(csvTime)
	}
	cw := csv.NewWriter(w)
	header := []string{"command_id", "device_id", "device", "command", "version", "reason", "requested_by",
		"requested_at (" + zone + ")", "sent_at (" + zone + ")", "attempts", "confirmed_at (" + zone + ")",
		"confirmed_after_seconds", "status", "last_error", "refused_at (" + zone + ")"}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, c := range r.Commands {
		if c == nil {
			continue
		}
		device := labels[c.DeviceID]
		if device == "" {
			device = "#" + strconv.FormatInt(c.DeviceID, 10)
		}
		latency := ""
		if l := c.Latency(); !c.ConfirmedAt.IsZero() {
			latency = strconv.FormatFloat(l.Seconds(), 'f', 3, 64)
		}
		rec := []string{strconv.FormatInt(c.ID, 10), strconv.FormatInt(c.DeviceID, 10), device, verb(c.State),
			strconv.FormatInt(c.Version, 10), c.Reason, c.RequestedBy, at(c.RequestedAt), at(c.SentAt),
			strconv.Itoa(c.Attempts), at(c.ConfirmedAt), latency, string(c.Status), c.LastError, at(c.RefusedAt)}
		for i := range rec {
			rec[i] = safeCell(rec[i])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
