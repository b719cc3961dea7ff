package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
)

// Fields of an unlock event a CSV column can be mapped to.
const (
	FieldEventID    = "event_id"    // optional: derived from the row when absent or blank
	FieldOccurredAt = "occurred_at" // required
	FieldMethod     = "method"      // optional: "unknown" when absent or blank
	FieldActorRef   = "actor_ref"   // optional
	FieldResult     = "result"      // required
	FieldDevice     = "device"      // the vendor's reference (serial); this or device_id is required
	FieldDeviceID   = "device_id"   // the portal's device id
)

// CSVFields lists the fields in the order a mapping form shows them.
var CSVFields = []string{FieldOccurredAt, FieldResult, FieldDevice, FieldDeviceID, FieldMethod, FieldActorRef, FieldEventID}

// Limits of an uploaded export.
const (
	MaxCSVRows      = 250000
	MaxPreviewRows  = 20
	maxHeaderPrefix = 64 << 10 // bytes read to find the header line and its delimiter
)

// CSVMapping says which column holds which field.
type CSVMapping struct {
	// Columns maps a field (FieldOccurredAt, …) to a column, counted from 0;
	// a field not in the map is not in the file.
	Columns map[string]int
	// Comma is the delimiter; 0 guesses it from the header line (, ; or tab).
	Comma rune
	// Location is where times without an offset were written (the building's
	// time zone); nil is UTC.
	Location *time.Location
	// TimeLayout is a Go layout for occurred_at (e.g. "01/02/2006 15:04");
	// "" accepts RFC 3339, ISO 8601 without offset ("2026-03-08 14:03:00") and
	// Unix seconds or milliseconds.
	TimeLayout string
}

// CSVPreview is what a manager checks before importing: the header, the first
// rows, and a guess of the mapping to confirm or correct.
type CSVPreview struct {
	Header []string
	Rows   [][]string
	Comma  rune
	Guess  map[string]int
}

// PreviewCSV reads the header and up to rows data rows (at most MaxPreviewRows).
// EINVALID for a file that is not UTF-8 CSV.
func PreviewCSV(r io.Reader, rows int) (*CSVPreview, error) {
	if rows <= 0 || rows > MaxPreviewRows {
		rows = MaxPreviewRows
	}
	br, comma, err := openCSV(r, 0)
	if err != nil {
		return nil, err
	}
	cr := newCSVReader(br, comma)
	header, err := readHeader(cr)
	if err != nil {
		return nil, err
	}
	pv := &CSVPreview{Header: header, Comma: comma, Guess: GuessMapping(header)}
	var p problems
	for len(pv.Rows) < rows {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			return nil, csvError(err)
		}
		if rec == nil {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			p.add(lineKey(line), fmt.Sprintf("has %d columns; the header has %d", len(rec), len(header)))
		}
		for i, f := range rec {
			if !utf8.ValidString(f) {
				p.add(lineKey(line), notUTF8(i, header))
			}
		}
		pv.Rows = append(pv.Rows, slices.Clone(rec))
	}
	if err := p.err("file"); err != nil {
		return nil, err
	}
	return pv, nil
}

// GuessMapping maps fields to columns by their header names ("Timestamp",
// "Serial Number", "Status", …); a field whose column it cannot tell is left out.
func GuessMapping(header []string) map[string]int {
	names := map[string][]string{
		FieldEventID:    {"eventid", "event", "id", "uuid", "eventuuid", "logid", "entryid", "transactionid", "recordid"},
		FieldOccurredAt: {"occurredat", "timestamp", "time", "datetime", "eventtime", "occurred", "date", "when", "timeutc", "createdat", "unlockedat", "openedat"},
		FieldMethod:     {"method", "accessmethod", "type", "accesstype", "via", "channel", "credentialtype", "unlockmethod"},
		FieldActorRef:   {"actorref", "actor", "courier", "courierid", "user", "userid", "packageid", "package", "deliveryid", "reference", "ref"},
		FieldResult:     {"result", "status", "outcome", "accessresult", "granted", "access", "success", "decision"},
		FieldDevice:     {"device", "deviceserial", "serial", "serialnumber", "serialno", "deviceid", "devicename", "unit", "unitid"},
		FieldDeviceID:   {"doorledgerdeviceid", "portaldeviceid"},
	}
	norm := make([]string, len(header))
	for i, h := range header {
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			}
		}
		norm[i] = b.String()
	}
	m := map[string]int{}
	used := map[int]bool{}
	for _, f := range []string{FieldDeviceID, FieldOccurredAt, FieldResult, FieldDevice, FieldMethod, FieldActorRef, FieldEventID} {
		for _, want := range names[f] {
			if i := slices.Index(norm, want); i >= 0 && !used[i] {
				m[f], used[i] = i, true
				break
			}
		}
	}
	return m
}

// check refuses a mapping that misses a required field or names a column the
// file does not have.
func (m *CSVMapping) check(header []string) error {
	v := doorledger.Validation{}
	seen := map[int]string{}
	for f, i := range m.Columns {
		if !slices.Contains(CSVFields, f) {
			v.Add(f, "Not a field of an unlock event.")
		} else if i < 0 || i >= len(header) {
			v.Add(f, fmt.Sprintf("The file has columns 0 to %d.", len(header)-1))
		} else if other, dup := seen[i]; dup {
			v.Add(f, fmt.Sprintf("Column %q is mapped to %s already.", header[i], other))
		} else {
			seen[i] = f
		}
	}
	if _, ok := m.Columns[FieldOccurredAt]; !ok {
		v.Add(FieldOccurredAt, "Choose the column with the time of each event.")
	}
	if _, ok := m.Columns[FieldResult]; !ok {
		v.Add(FieldResult, "Choose the column that says granted or denied.")
	}
	_, dev := m.Columns[FieldDevice]
	_, devID := m.Columns[FieldDeviceID]
	if !dev && !devID {
		v.Add(FieldDevice, "Choose the column that names the device (its serial number).")
	}
	return v.Err()
}

// ParseCSV reads a vendor's export with its mapping: every row becomes an
// event (Source csv, BuildingID left for the importer to set), or nothing
// does. Errors are one EINVALID listing the lines and what is wrong with each
// (Fields: "line 14" → "occurred_at: …"), up to 100 of them: rows with the
// wrong number of columns, values that do not parse, text that is not UTF-8.
// Broken quoting stops the reading at the line where it is found.
func ParseCSV(r io.Reader, m CSVMapping) (*doorledger.UnlockImport, error) {
	br, comma, err := openCSV(r, m.Comma)
	if err != nil {
		return nil, err
	}
	cr := newCSVReader(br, comma)
	header, err := readHeader(cr)
	if err != nil {
		return nil, err
	}
	if err := m.check(header); err != nil {
		return nil, err
	}
	loc := m.Location
	if loc == nil {
		loc = time.UTC
	}
	imp := &doorledger.UnlockImport{}
	var p problems
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("read CSV: %w", err)
			}
			p.add(lineKey(pe.Line), quotingMessage(pe))
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			p.add(lineKey(line), fmt.Sprintf("has %d columns; the header has %d", len(rec), len(header)))
			continue
		}
		if len(imp.Events) >= MaxCSVRows {
			p.add(lineKey(line), fmt.Sprintf("the file has more than %d rows; split it", MaxCSVRows))
			break
		}
		bad := false
		for i, f := range rec {
			if !utf8.ValidString(f) {
				p.add(lineKey(line), notUTF8(i, header))
				bad = true
				break
			}
		}
		if bad {
			continue
		}
		ev, err := rowEvent(rec, &m, loc)
		if err != nil {
			p.add(lineKey(line), err.Error())
			continue
		}
		imp.Events = append(imp.Events, ev)
		imp.Lines = append(imp.Lines, line)
	}
	if err := p.err("file"); err != nil {
		return nil, err
	}
	if len(imp.Events) == 0 {
		return nil, invalid("The file has a header but no rows.")
	}
	return imp, nil
}

func lineKey(n int) string { return "line " + strconv.Itoa(n) }

func notUTF8(col int, header []string) string {
	name := strconv.Itoa(col + 1)
	if col < len(header) && utf8.ValidString(header[col]) {
		name = strconv.Quote(truncate(header[col], 40))
	}
	return fmt.Sprintf("column %s: not UTF-8 text; export the file as UTF-8 (it may be Latin-1 or Windows-1252)", name)
}

func quotingMessage(pe *csv.ParseError) string {
	msg := fmt.Sprintf("broken quoting at column %d: %v", pe.Column, pe.Err)
	if pe.StartLine != pe.Line {
		msg += fmt.Sprintf(" (in the row that starts on line %d)", pe.StartLine)
	}
	return msg + "; nothing after it was read"
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return invalid("line %d: %s", pe.Line, quotingMessage(pe))
	}
	return fmt.Errorf("read CSV: %w", err)
}

// openCSV checks the encoding of the start of the file, skips a UTF-8 byte
// order mark and guesses the delimiter when comma is 0.
func openCSV(r io.Reader, comma rune) (*bufio.Reader, rune, error) {
	br := bufio.NewReaderSize(r, maxHeaderPrefix)
	head, err := br.Peek(maxHeaderPrefix)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, 0, fmt.Errorf("read CSV: %w", err)
	}
	switch {
	case len(bytes.TrimSpace(head)) == 0:
		return nil, 0, invalid("The file is empty.")
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}) || bytes.HasPrefix(head, []byte{0xFE, 0xFF}) || bytes.IndexByte(head, 0) >= 0:
		return nil, 0, invalid("line 1: the file is UTF-16 or binary, not UTF-8 text; export it as CSV UTF-8")
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		br.Discard(3)
		head = head[3:]
	}
	if comma == 0 {
		first := head
		if i := bytes.IndexAny(head, "\r\n"); i >= 0 {
			first = head[:i]
		}
		comma = ','
		best := bytes.Count(first, []byte{','})
		for _, c := range []rune{';', '\t'} {
			if n := bytes.Count(first, []byte(string(c))); n > best {
				comma, best = c, n
			}
		}
	} else if comma == '"' || comma == '\r' || comma == '\n' || !utf8.ValidRune(comma) || comma == utf8.RuneError {
		return nil, 0, invalid("The delimiter must be a comma, a semicolon or a tab.")
	}
	return br, comma, nil
}

func newCSVReader(r io.Reader, comma rune) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = 0 // every row has as many columns as the header
	cr.ReuseRecord = true
	return cr
}

func readHeader(cr *csv.Reader) ([]string, error) {
	rec, err := cr.Read()
	if err == io.EOF {
		return nil, invalid("The file is empty.")
	} else if err != nil {
		return nil, csvError(err)
	}
	header := slices.Clone(rec)
	line, _ := cr.FieldPos(0)
	for i, h := range header {
		if !utf8.ValidString(h) {
			return nil, invalid("line %d: %s", line, notUTF8(i, nil))
		}
		header[i] = strings.TrimSpace(h)
	}
	return header, nil
}

// resultAliases are the words vendors' exports use for the two results.
var resultAliases = map[string]doorledger.UnlockResult{
	"granted": doorledger.UnlockGranted, "grant": doorledger.UnlockGranted, "allowed": doorledger.UnlockGranted,
	"allow": doorledger.UnlockGranted, "success": doorledger.UnlockGranted, "successful": doorledger.UnlockGranted,
	"ok": doorledger.UnlockGranted, "opened": doorledger.UnlockGranted, "open": doorledger.UnlockGranted,
	"unlocked": doorledger.UnlockGranted, "true": doorledger.UnlockGranted, "yes": doorledger.UnlockGranted, "1": doorledger.UnlockGranted,
	"denied": doorledger.UnlockDenied, "deny": doorledger.UnlockDenied, "rejected": doorledger.UnlockDenied,
	"refused": doorledger.UnlockDenied, "failed": doorledger.UnlockDenied, "failure": doorledger.UnlockDenied,
	"fail": doorledger.UnlockDenied, "false": doorledger.UnlockDenied, "no": doorledger.UnlockDenied, "0": doorledger.UnlockDenied,
}

// rowEvent turns one row into an event; the error names the field.
func rowEvent(rec []string, m *CSVMapping, loc *time.Location) (doorledger.UnlockEvent, error) {
	col := func(f string) string {
		if i, ok := m.Columns[f]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var ev doorledger.UnlockEvent
	ev.Source = doorledger.SourceCSV
	at := col(FieldOccurredAt)
	if at == "" {
		return ev, errors.New("occurred_at: missing")
	}
	t, err := parseCSVTime(at, m.TimeLayout, loc)
	if err != nil {
		return ev, fmt.Errorf("occurred_at: %q is not a time (use 2026-03-08T14:03:00Z or 2026-03-08 14:03:00)", truncate(at, 40))
	}
	ev.OccurredAt = t
	res := col(FieldResult)
	if res == "" {
		return ev, errors.New("result: missing")
	}
	r, ok := resultAliases[strings.ToLower(res)]
	if !ok {
		return ev, fmt.Errorf("result: %q is neither granted nor denied", truncate(res, 40))
	}
	ev.Result = r
	if s := col(FieldDeviceID); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return ev, fmt.Errorf("device_id: %q is not a device number", truncate(s, 40))
		}
		ev.DeviceID = n
	}
	ev.DeviceRef = col(FieldDevice)
	if ev.DeviceID == 0 && ev.DeviceRef == "" {
		return ev, errors.New("device: missing")
	}
	ev.Method = col(FieldMethod)
	if ev.Method == "" {
		ev.Method = doorledger.MethodUnknown
	}
	ev.ActorRef = col(FieldActorRef)
	ev.EventID = col(FieldEventID)
	if ev.EventID == "" {
		ev.EventID = derivedEventID(&ev)
	}
	// Validate as the importer will, with a stand-in building: the importer
	// sets the real one.
	ev.BuildingID = 1
	err = ev.Validate()
	ev.BuildingID = 0
	if err != nil {
		return ev, errors.New(doorledger.ErrorMessage(err))
	}
	return ev, nil
}

// derivedEventID names a row that has no event id by what it says, so that
// uploading the same export twice records its events once.
func derivedEventID(ev *doorledger.UnlockEvent) string {
	h := sha256.New()
	for _, s := range []string{strconv.FormatInt(ev.DeviceID, 10), ev.DeviceRef, ev.OccurredAt.UTC().Format(time.RFC3339Nano),
		doorledger.NormalizeMethod(ev.Method), ev.ActorRef, string(ev.Result)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "csv-" + hex.EncodeToString(h.Sum(nil))[:32]
}

var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04"}
var offsetLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05 Z07:00", "2006-01-02 15:04:05 -0700"}

func parseCSVTime(s, layout string, loc *time.Location) (time.Time, error) {
	if layout != "" {
		return time.ParseInLocation(layout, s, loc)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case len(s) >= 9 && len(s) <= 10:
			return time.Unix(n, 0).UTC(), nil
		case len(s) >= 12 && len(s) <= 13:
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Time{}, errors.New("not a Unix time in seconds or milliseconds")
	}
	for _, l := range offsetLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not a time")
}
