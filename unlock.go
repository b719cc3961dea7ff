package doorledger

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// UnlockResult is whether the device opened the door.
type UnlockResult string

const (
	UnlockGranted UnlockResult = "granted"
	UnlockDenied  UnlockResult = "denied"
)

// Where an unlock event came from.
const (
	SourceMQTT = "mqtt" // a device on its events topic
	SourceHTTP = "http" // a vendor cloud's signed batch
	SourceCSV  = "csv"  // a vendor's export uploaded by a manager
)

// Usual unlock methods. Others are accepted (a vendor may have its own), as a
// lower-case word of letters, digits and underscores; see NormalizeMethod.
const (
	MethodCourierApp = "courier_app"
	MethodKeypad     = "keypad"
	MethodRemote     = "remote"
	MethodUnknown    = "unknown" // the source did not say
)

// Anomaly kinds flagged on an unlock event when it is recorded.
const (
	AnomalyAfterRevocation = "after_revocation" // granted by a device that was disabled, or whose disable was pending
	AnomalyWithoutConsent  = "without_consent"  // granted by a device with no active consent at the time, or any attempt through a device flagged unconsented
	AnomalyUnknownDevice   = "unknown_device"   // from a device the portal does not know
	AnomalyOutsideHours    = "outside_hours"    // granted outside the building's delivery hours
	AnomalyBurst           = "burst"            // more granted unlocks in the building than its burst setting allows
	AnomalyClockSkew       = "clock_skew"       // the device's time is far from the portal's
)

// AnomalyKinds lists every anomaly kind, in display order.
var AnomalyKinds = []string{AnomalyAfterRevocation, AnomalyWithoutConsent, AnomalyUnknownDevice,
	AnomalyOutsideHours, AnomalyBurst, AnomalyClockSkew}

// AnomalyDescription explains an anomaly kind to a manager ("" for an unknown kind).
func AnomalyDescription(kind string) string {
	switch kind {
	case AnomalyAfterRevocation:
		return "opened the door while disabled, or after a disable was sent but before the device confirmed it"
	case AnomalyWithoutConsent:
		return "opened or tried the door through a device with no active consent from an authorized signer"
	case AnomalyUnknownDevice:
		return "came from a device that is not registered in this building"
	case AnomalyOutsideHours:
		return "opened the door outside the building's delivery hours"
	case AnomalyBurst:
		return "was one of more door openings in a short time than the building allows"
	case AnomalyClockSkew:
		return "carries a device time far from the portal's clock; the time received is used instead"
	}
	return ""
}

// Limits on the fields of an unlock event, and the clock sanity window.
const (
	MaxEventIDLen   = 128
	MaxMethodLen    = 64
	MaxActorRefLen  = 256
	MaxDeviceRefLen = 128

	// An event whose device time is more than ClockSkewAhead after, or more than
	// ClockSkewBehind before, the time it was received is kept but flagged
	// clock_skew. CSV imports are history: only the first limit applies to them.
	ClockSkewAhead  = 24 * time.Hour
	ClockSkewBehind = 30 * 24 * time.Hour
)

// UnlockEvent is one door opening (or refusal) reported by a device or a vendor.
type UnlockEvent struct {
	ID         int64
	DeviceID   int64 // 0: a device the portal does not know (DeviceRef says what the source called it)
	DeviceRef  string
	BuildingID int64        // set from the device; required with DeviceRef alone
	EventID    string       // device-generated; (DeviceID, EventID) is unique, re-delivery is a no-op
	OccurredAt time.Time    // device clock
	ReceivedAt time.Time    // portal clock, always recorded (the time of recording when zero)
	Method     string       // e.g. "courier_app", "keypad", "remote"
	ActorRef   string       // opaque courier / package reference
	Result     UnlockResult //
	Anomalies  []string     // kinds from AnomalyKinds, flagged when recorded
	Source     string       // SourceMQTT (when empty), SourceHTTP or SourceCSV

	// What was done about an anomalous event: a manager's acknowledgement,
	// read with the event (zero AcknowledgedAt: still open). The event itself
	// never changes; the acknowledgement is a fact of its own with its own
	// journal entry, and is not part of the event's log leaf.
	AcknowledgedAt time.Time
	AcknowledgedBy string // who, as the journal names them (an email, or "system")
	AckNote        string // what was done, in the manager's words

	// RedactedBy is the journal entry (RedactAction) that removed the
	// event's identifiable fields under the privacy profile (0: none). The
	// log keeps the leaf of the event as received; verification checks what
	// remains against it through the redaction's record.
	RedactedBy int64
}

// EffectiveAt is when the event counts as having happened: the time the
// portal received it when the device's clock was flagged skewed (its time is
// not to be trusted), the device's time otherwise. Every dated view — the
// history's filters and pages, its CSV export, the charts, the reports, the
// retention purge, the burst window — reads this one time; the database
// holds the same rule (unlock_events.effective_at, migrations/012).
func (e *UnlockEvent) EffectiveAt() time.Time {
	if e.ClockSkewed() {
		return e.ReceivedAt
	}
	return e.OccurredAt
}

// ClockSkewed reports whether the event is flagged clock_skew: its device
// time is far from the time it was received, and so not the time it counts at.
func (e *UnlockEvent) ClockSkewed() bool { return e.HasAnomaly(AnomalyClockSkew) }

// Acknowledged reports whether a manager has acknowledged the event's anomalies.
func (e *UnlockEvent) Acknowledged() bool { return !e.AcknowledgedAt.IsZero() }

// OpenAnomaly reports whether the event is flagged and not yet acknowledged.
func (e *UnlockEvent) OpenAnomaly() bool { return len(e.Anomalies) > 0 && !e.Acknowledged() }

// HasAnomaly reports whether the event is flagged with kind.
func (e *UnlockEvent) HasAnomaly(kind string) bool { return slices.Contains(e.Anomalies, kind) }

// Validate checks and normalizes an event as a source delivered it (trimmed
// text, method normalized). Its EINVALID message names the field, as in
// "occurred_at: missing"; decoders prefix where the event was ("event 3: ").
func (e *UnlockEvent) Validate() error {
	bad := func(format string, args ...any) error { return Errorf(EINVALID, format, args...) }
	e.EventID = strings.TrimSpace(e.EventID)
	e.DeviceRef = strings.TrimSpace(e.DeviceRef)
	e.ActorRef = strings.TrimSpace(e.ActorRef)
	e.Method = NormalizeMethod(e.Method)
	switch {
	case e.DeviceID < 0:
		return bad("device_id: must be positive")
	case e.DeviceID == 0 && e.DeviceRef == "":
		return bad("device: missing (give device_id or device)")
	case e.BuildingID < 0:
		return bad("building_id: must be positive")
	case e.DeviceID == 0 && e.BuildingID == 0:
		return bad("building_id: missing (needed for a device named only by its reference)")
	}
	if err := checkText(e.DeviceRef, MaxDeviceRefLen); err != nil {
		return bad("device: %s", err)
	}
	if e.EventID == "" {
		return bad("event_id: missing")
	} else if err := checkText(e.EventID, MaxEventIDLen); err != nil {
		return bad("event_id: %s", err)
	}
	if e.OccurredAt.IsZero() {
		return bad("occurred_at: missing")
	} else if y := e.OccurredAt.UTC().Year(); y < 1 || y > 9999 {
		return bad("occurred_at: year %d is out of range", y)
	}
	if y := e.ReceivedAt.UTC().Year(); !e.ReceivedAt.IsZero() && (y < 1 || y > 9999) {
		return bad("received_at: year %d is out of range", y)
	}
	if e.Method == "" {
		return bad("method: missing")
	} else if len(e.Method) > MaxMethodLen {
		return bad("method: longer than %d bytes", MaxMethodLen)
	} else if strings.IndexFunc(e.Method, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') }) >= 0 {
		return bad("method: %q is not a word of letters, digits and underscores", e.Method)
	}
	if err := checkText(e.ActorRef, MaxActorRefLen); err != nil {
		return bad("actor_ref: %s", err)
	}
	switch e.Result {
	case UnlockGranted, UnlockDenied:
	case "":
		return bad("result: missing")
	default:
		return bad("result: must be granted or denied, not %q", truncate(string(e.Result), 40))
	}
	switch e.Source {
	case "", SourceMQTT, SourceHTTP, SourceCSV:
	default:
		return bad("source: must be mqtt, http or csv, not %q", truncate(e.Source, 40))
	}
	return nil
}

// checkText refuses text that is too long, not UTF-8, or has control characters.
func checkText(s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return fmt.Errorf("not UTF-8 text")
	case strings.IndexFunc(s, func(r rune) bool { return RefusedRune(r, false) }) >= 0:
		return fmt.Errorf("contains control characters")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// NormalizeMethod trims and lower-cases a method and joins its words with
// underscores: "Courier App" and "courier-app" become "courier_app".
func NormalizeMethod(m string) string {
	f := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(m)), func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '.' || r == '/'
	})
	return strings.Join(f, "_")
}

// EventSink durably records unlock events. It returns only after they are
// committed, so a transport may then acknowledge them; repeated (device, event
// id) pairs are accepted and ignored. A call is all or nothing. EINVALID names
// the offending event ("event 3: occurred_at: missing"), counting from 0.
type EventSink interface {
	RecordUnlocks(ctx context.Context, events []UnlockEvent) error
}

// BusySink is an EventSink that says when it holds more events waiting to be
// committed than it takes (the storage's UnlockService.MaxQueued): the
// transports then refuse a device's events unread, with ErrIngestBusy, so
// that its report does not wait behind them and the portal does not spend
// on messages it will not keep. A sink that wraps another passes it on.
type BusySink interface {
	EventSink
	IngestBusy() bool
}

// ErrIngestBusy is what an EventSink answers when more events wait to be
// committed than it takes (the storage's MaxQueued): nothing was recorded,
// and the sender sends them again shortly (a negative PUBACK, HTTP 503).
var ErrIngestBusy = &Error{Code: EUNAVAILABLE,
	Message: "The portal is busy recording other events, so these were not recorded. Please send them again shortly."}

// UnlockImport is a vendor's export, parsed, that a manager imports into a building.
type UnlockImport struct {
	BuildingID int64
	Events     []UnlockEvent
	Lines      []int  // the file line of each event, for messages (optional)
	FileName   string // for the audit journal
	SHA256     string // of the uploaded file, for the audit journal
}

// ImportResult counts what a recording did.
type ImportResult struct {
	Events     int // received
	Inserted   int // new
	Duplicates int // already recorded: ignored
	Anomalous  int // new and flagged
}

// DeliveryWindow is a span of local time within a day, in minutes from midnight:
// 0 <= Start < End <= 1440.
type DeliveryWindow struct{ Start, End int }

// DeliverySchedule is when couriers may open a building's door, week by week in
// the building's time zone. The zero value is unrestricted (any time).
type DeliverySchedule struct {
	Restricted bool
	Days       [7][]DeliveryWindow // by time.Weekday; sorted, not overlapping
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDeliverySchedule reads a schedule such as
// "mon-fri 08:00-20:00; sat 09:00-12:00,14:00-17:00". Days are sun … sat,
// as ranges (mon-fri, fri-mon) or lists (mon,wed); entries are separated by ";"
// or new lines; "24:00" ends a day; days not named allow no deliveries. ""
// means any time, "never" no time at all. Errors are EINVALID.
func ParseDeliverySchedule(s string) (DeliverySchedule, error) {
	var sch DeliverySchedule
	s = strings.TrimSpace(s)
	if s == "" {
		return sch, nil
	}
	sch.Restricted = true
	if strings.EqualFold(s, "never") {
		return sch, nil
	}
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' || r == '\r' })
	for _, entry := range entries {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		daysPart, timesPart, ok := strings.Cut(entry, " ")
		if !ok {
			return sch, Errorf(EINVALID, "%q: write days then hours, as in \"mon-fri 08:00-20:00\".", truncate(entry, 60))
		}
		days, err := parseDays(daysPart)
		if err != nil {
			return sch, err
		}
		var windows []DeliveryWindow
		for _, w := range strings.Split(strings.ReplaceAll(timesPart, " ", ""), ",") {
			start, end, ok := strings.Cut(w, "-")
			if !ok {
				return sch, Errorf(EINVALID, "%q: write hours as 08:00-20:00.", truncate(w, 40))
			}
			a, err1 := parseClock(start)
			b, err2 := parseClock(end)
			if err1 != nil || err2 != nil {
				return sch, Errorf(EINVALID, "%q: write hours as 08:00-20:00 (00:00 to 24:00).", truncate(w, 40))
			}
			if a >= b {
				return sch, Errorf(EINVALID, "%q: the end must be after the start; split a night across two days.", truncate(w, 40))
			}
			windows = append(windows, DeliveryWindow{a, b})
		}
		for _, d := range days {
			sch.Days[d] = mergeWindows(append(sch.Days[d], windows...))
		}
	}
	return sch, nil
}

func parseDays(s string) ([]time.Weekday, error) {
	var days []time.Weekday
	for _, part := range strings.Split(strings.ToLower(s), ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, err := parseDay(from)
		if err != nil {
			return nil, err
		}
		if !isRange {
			days = append(days, a)
			continue
		}
		b, err := parseDay(to)
		if err != nil {
			return nil, err
		}
		for d := a; ; d = (d + 1) % 7 {
			days = append(days, d)
			if d == b {
				break
			}
		}
	}
	return days, nil
}

func parseDay(s string) (time.Weekday, error) {
	s = strings.TrimSpace(s)
	for i, n := range dayNames {
		if s == n {
			return time.Weekday(i), nil
		}
	}
	return 0, Errorf(EINVALID, "Unknown day %q: use sun, mon, tue, wed, thu, fri or sat.", truncate(s, 20))
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("bad time")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 || h[0] == '+' || m[0] == '+' {
		return 0, fmt.Errorf("bad time")
	}
	return hh*60 + mm, nil
}

func mergeWindows(ws []DeliveryWindow) []DeliveryWindow {
	slices.SortFunc(ws, func(a, b DeliveryWindow) int { return a.Start - b.Start })
	var out []DeliveryWindow
	for _, w := range ws {
		if n := len(out); n > 0 && w.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, w.End)
			continue
		}
		out = append(out, w)
	}
	return out
}

// String writes the schedule in the form ParseDeliverySchedule reads, days
// from Monday, consecutive days with the same hours joined: "" for any time.
func (s DeliverySchedule) String() string {
	if !s.Restricted {
		return ""
	}
	week := []time.Weekday{1, 2, 3, 4, 5, 6, 0}
	var parts []string
	for i := 0; i < len(week); {
		d := week[i]
		j := i + 1
		for j < len(week) && slices.Equal(s.Days[week[j]], s.Days[d]) {
			j++
		}
		if len(s.Days[d]) > 0 {
			days := dayNames[d]
			if j-i > 1 {
				days += "-" + dayNames[week[j-1]]
			}
			var ws []string
			for _, w := range s.Days[d] {
				ws = append(ws, fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60))
			}
			parts = append(parts, days+" "+strings.Join(ws, ","))
		}
		i = j
	}
	if len(parts) == 0 {
		return "never"
	}
	return strings.Join(parts, "; ")
}

// Allows reports whether t, read in loc, falls in the schedule.
func (s DeliverySchedule) Allows(t time.Time, loc *time.Location) bool {
	if !s.Restricted {
		return true
	}
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	m := t.Hour()*60 + t.Minute()
	for _, w := range s.Days[t.Weekday()] {
		if m >= w.Start && m < w.End {
			return true
		}
	}
	return false
}

// Unlock settings of a building, and their defaults.
const (
	DefaultRetentionDays = 1095 // three years
	MinRetentionDays     = 30
	MaxRetentionDays     = 36500
	DefaultBurstCount    = 20
	DefaultBurstMinutes  = 10
)

// UnlockSettings are a building's rules for unlock events.
type UnlockSettings struct {
	BuildingID    int64
	RetentionDays int              // events older than this are purged daily
	DeliveryHours DeliverySchedule // granted unlocks outside it are flagged outside_hours
	// More than BurstCount granted unlocks in the building within BurstMinutes
	// flags each further one as a burst. 0 turns burst detection off.
	BurstCount   int
	BurstMinutes int
	// AlertBoard sends anomaly alerts to the building's board as well as its managers.
	AlertBoard bool
	// HeartbeatSeconds is how long a device of the building may stay silent
	// before it is reported offline, unless the device has its own; 0: not watched.
	HeartbeatSeconds int
}

// Validate checks the numbers.
func (s *UnlockSettings) Validate() error {
	v := Validation{}
	if s.RetentionDays < MinRetentionDays || s.RetentionDays > MaxRetentionDays {
		v.Add("retention_days", fmt.Sprintf("Keep events from %d to %d days.", MinRetentionDays, MaxRetentionDays))
	}
	if s.BurstCount < 0 || s.BurstCount > 100000 {
		v.Add("burst_count", "Use a number from 0 (off) to 100000.")
	}
	if s.BurstMinutes < 1 || s.BurstMinutes > 1440 {
		v.Add("burst_minutes", "Use from 1 to 1440 minutes.")
	}
	if s.HeartbeatSeconds < 0 || s.HeartbeatSeconds > 30*86400 {
		v.Add("heartbeat_seconds", "Use from 0 (not watched) to 30 days.")
	}
	if again, err := ParseDeliverySchedule(s.DeliveryHours.String()); err != nil {
		v.Add("delivery_hours", ErrorMessage(err))
	} else {
		s.DeliveryHours = again // sorted and merged
	}
	return v.Err()
}

// ChangeDetail is the journal detail of a change of a building's unlock
// rules from old to s (the "building.unlock_settings" entry).
func (s *UnlockSettings) ChangeDetail(old *UnlockSettings) map[string]any {
	describe := func(st *UnlockSettings) map[string]any {
		return map[string]any{"retention_days": st.RetentionDays, "delivery_hours": st.DeliveryHours.String(),
			"burst_count": st.BurstCount, "burst_minutes": st.BurstMinutes, "alert_board": st.AlertBoard,
			"heartbeat_seconds": st.HeartbeatSeconds}
	}
	return map[string]any{"old": describe(old), "new": describe(s)}
}

// CheckDeviceHeartbeat checks a device's own heartbeat (seconds < 0: the
// building's, 0: not watched): EINVALID past 30 days.
func CheckDeviceHeartbeat(seconds int) error {
	if seconds > 30*86400 {
		return Errorf(EINVALID, "Use a heartbeat of at most 30 days.")
	}
	return nil
}

// UnlockCursor is where a page of history ends: the (effective time, id) of
// its last event (UnlockEvent.EffectiveAt). The next page starts strictly
// after it.
type UnlockCursor struct {
	At time.Time
	ID int64
}

// IsZero reports whether c is no cursor (the first page).
func (c UnlockCursor) IsZero() bool { return c.ID == 0 && c.At.IsZero() }

// String encodes the cursor for a URL ("" for none).
func (c UnlockCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(c.At.UnixMicro(), 10) + "." + strconv.FormatInt(c.ID, 10)
}

// ParseUnlockCursor decodes String's output; "" is the zero cursor. EINVALID otherwise.
func ParseUnlockCursor(s string) (UnlockCursor, error) {
	if s == "" {
		return UnlockCursor{}, nil
	}
	at, id, ok := strings.Cut(s, ".")
	us, err1 := strconv.ParseInt(at, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || n <= 0 || us < -62135596800000000 || us > 253402300799999999 {
		return UnlockCursor{}, Errorf(EINVALID, "This page link is not valid; start from the first page.")
	}
	return UnlockCursor{At: time.UnixMicro(us).UTC(), ID: n}, nil
}

// UnlockFilter selects a building's unlock history.
type UnlockFilter struct {
	BuildingID    int64        // required
	DeviceID      int64        // 0: any
	DeviceRef     string       // an unknown device's reference; "": any
	From, To      string       // dates (2006-01-02) in the building's time zone, both included, of the events' effective time; "": open
	Method        string       // "": any
	Result        UnlockResult // "": any
	AnomaliesOnly bool
	Anomaly       string       // one kind; implies AnomaliesOnly
	OpenOnly      bool         // only anomalies not yet acknowledged; implies AnomaliesOnly
	After         UnlockCursor // zero: the newest events
	Limit         int          // 0: 50; at most 500
}

// Unlock history pages: UnlockFilter.Limit's default and most.
const (
	DefaultUnlockPage = 50
	MaxUnlockPage     = 500
)

// PageSize is the events of a page f asks for: Limit, DefaultUnlockPage
// when 0 (or less), at most MaxUnlockPage.
func (f UnlockFilter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return DefaultUnlockPage
	case f.Limit > MaxUnlockPage:
		return MaxUnlockPage
	}
	return f.Limit
}

// Dates checks f and returns the span of effective time its dates select
// in loc, the building's time zone: from its first day's start (zero:
// open) to the end of its last day, excluded (zero: open). EINVALID names
// the fields that are wrong: a date, an end before the start, the result, an
// anomaly kind not in AnomalyKinds.
func (f UnlockFilter) Dates(loc *time.Location) (from, to time.Time, err error) {
	v := Validation{}
	if f.From != "" {
		t, err := time.ParseInLocation("2006-01-02", f.From, loc)
		if err != nil {
			v.Add("from", "Use a date such as 2026-03-08.")
		}
		from = t
	}
	if f.To != "" {
		t, err := time.ParseInLocation("2006-01-02", f.To, loc)
		if err != nil {
			v.Add("to", "Use a date such as 2026-03-08.")
		} else {
			to = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
			if !from.IsZero() && !to.After(from) {
				v.Add("to", "The end date must not be before the start date.")
			}
		}
	}
	if f.Result != "" && f.Result != UnlockGranted && f.Result != UnlockDenied {
		v.Add("result", "Choose granted or denied.")
	}
	if f.Anomaly != "" && !slices.Contains(AnomalyKinds, f.Anomaly) {
		v.Add("anomaly", "Choose a kind of anomaly from the list.")
	}
	if err := v.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	return from, to, nil
}

// UnlockPage is a page of history, newest first.
type UnlockPage struct {
	Events   []*UnlockEvent
	Next     UnlockCursor // zero on the last page
	Timezone string       // the building's, to show times in
}

// UnlockDay counts a day's events (a date in the building's time zone).
type UnlockDay struct {
	Date      string // 2006-01-02
	Granted   int
	Denied    int
	Anomalous int
}

// OfflineDevice is a device silent for longer than its heartbeat.
type OfflineDevice struct {
	DeviceID   int64
	BuildingID int64
	Since      time.Time // last seen (or registered, if never seen)
	Heartbeat  time.Duration
	Alerted    bool // this silence was reported just now (false: reported already)
}

// UnlockService records and reads unlock events. Reads are for a building's
// admins, managers and board; installers get ENOTFOUND like anyone without a
// grant. Writes of settings are for managers (EFORBIDDEN for the board).
type UnlockService interface {
	EventSink
	// ImportUnlocks records a vendor's CSV export into a building (managers): all
	// or nothing; EINVALID lists what could not be matched by line.
	ImportUnlocks(ctx context.Context, imp UnlockImport) (*ImportResult, error)
	// History returns a page of the building's events, newest first. EINVALID for a bad filter.
	History(ctx context.Context, f UnlockFilter) (*UnlockPage, error)
	// DailyCounts counts the last days of events of a building (or of one of its
	// devices when deviceID is not 0), by date in the building's time zone, oldest first.
	DailyCounts(ctx context.Context, buildingID, deviceID int64, days int) ([]UnlockDay, error)
	// LastUnlocks returns the newest event (by effective time) of each of the
	// building's devices that has one, by device id: one read for a page
	// listing the devices.
	LastUnlocks(ctx context.Context, buildingID int64) (map[int64]*UnlockEvent, error)
	// ExportCSV streams every event matching f (f.After and f.Limit ignored) as
	// CSV to w, in constant memory, and returns how many rows it wrote.
	ExportCSV(ctx context.Context, f UnlockFilter, w io.Writer) (int64, error)
	// UnlockSettings returns the building's rules.
	UnlockSettings(ctx context.Context, buildingID int64) (*UnlockSettings, error)
	// UpdateUnlockSettings changes them (managers). EINVALID.
	UpdateUnlockSettings(ctx context.Context, buildingID int64, s UnlockSettings) (*UnlockSettings, error)
	// SetDeviceHeartbeat sets a device's own heartbeat in seconds (managers);
	// a negative value returns it to the building's.
	SetDeviceHeartbeat(ctx context.Context, deviceID int64, seconds int) error
	// Purge deletes the events older than each building's retention at now and
	// records how many in the audit journal (the system's daily job).
	Purge(ctx context.Context, now time.Time) (int64, error)
	// OfflineDevices returns the devices silent for longer than their heartbeat
	// at now, alerting once per silence (the system's job).
	OfflineDevices(ctx context.Context, now time.Time) ([]*OfflineDevice, error)

	// AcknowledgeAnomaly records what a manager did about an anomalous event
	// (the building's managers and admins), with its journal entry, and
	// returns the event with its acknowledgement. ENOTFOUND for an event the
	// caller may not read, EFORBIDDEN for the board, EINVALID for a bad note
	// (Fields["note"]) or an event that is not anomalous, ECONFLICT when it is
	// already acknowledged (the message says by whom and when).
	AcknowledgeAnomaly(ctx context.Context, eventID int64, note string) (*UnlockEvent, error)
	// AcknowledgeAnomalies acknowledges several anomalous events of a building
	// with one note (a burst makes many), all or nothing, each with its own
	// journal entry; at most MaxAckEvents, repeated ids counted once. It
	// returns the events, by id. Errors as AcknowledgeAnomaly, the message
	// naming the first event listed that cannot be acknowledged; ENOTFOUND for
	// an event of another building.
	AcknowledgeAnomalies(ctx context.Context, buildingID int64, eventIDs []int64, note string) ([]*UnlockEvent, error)
	// CountOpenAnomalies counts the building's anomalous events not yet
	// acknowledged, up to max (the count stops there, so a dashboard's cost
	// stays bounded however many there are).
	CountOpenAnomalies(ctx context.Context, buildingID int64, max int) (int, error)
}

// Limits of anomaly acknowledgements.
const (
	MaxAckNoteLen = 500 // characters
	MaxAckEvents  = 500 // events acknowledged in one call
)

// NormalizeAckNote trims an acknowledgement's note and checks it: EINVALID
// with Fields["note"] when it is empty, longer than MaxAckNoteLen characters,
// not UTF-8 text, or has control characters (it is one line).
func NormalizeAckNote(note string) (string, error) {
	note = strings.TrimSpace(note)
	v := Validation{}
	switch {
	case note == "":
		v.Add("note", "Say what was done, e.g. \"device removed\" or \"false alarm: delivery hours were wrong\".")
	case !utf8.ValidString(note):
		v.Add("note", "Use plain text.")
	case utf8.RuneCountInString(note) > MaxAckNoteLen:
		v.Add("note", fmt.Sprintf("Write at most %d characters.", MaxAckNoteLen))
	default:
		ValidateLine(v, "note", note)
	}
	return note, v.Err()
}

// CheckAck checks an acknowledgement before its events are read: the role
// (EFORBIDDEN but for managers and admins), the note (NormalizeAckNote) and
// the ids (EINVALID when there are none or more than MaxAckEvents). It
// returns the note trimmed and the ids sorted, each once.
func CheckAck(role Role, note string, eventIDs []int64) (string, []int64, error) {
	if role != RoleAdmin && role != RoleManager {
		return "", nil, Errorf(EFORBIDDEN, "Only the building's managers may acknowledge anomalies.")
	}
	note, err := NormalizeAckNote(note)
	if err != nil {
		return "", nil, err
	}
	ids := slices.Clone(eventIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	switch {
	case len(ids) == 0:
		return "", nil, Errorf(EINVALID, "Choose the anomalies to acknowledge.")
	case len(ids) > MaxAckEvents:
		return "", nil, Errorf(EINVALID, "Acknowledge at most %d anomalies at once.", MaxAckEvents)
	}
	return note, ids, nil
}

// CheckAcknowledgeable checks the events read for an acknowledgement of
// building buildingID, taking the ids in the order the caller gave them
// (eventIDs), so the refusal names the first listed that cannot be
// acknowledged: ENOTFOUND when it is not among events or of another
// building, EINVALID when it is not anomalous, AlreadyAcknowledged when it
// was. loc is the building's zone.
func CheckAcknowledgeable(buildingID int64, eventIDs []int64, events []*UnlockEvent, loc *time.Location) error {
	found := make(map[int64]*UnlockEvent, len(events))
	for _, e := range events {
		found[e.ID] = e
	}
	for _, id := range eventIDs {
		e := found[id]
		switch {
		case e == nil || e.BuildingID != buildingID:
			return Errorf(ENOTFOUND, "Event %d not found.", id)
		case len(e.Anomalies) == 0:
			return Errorf(EINVALID, "Event %d is not flagged as an anomaly: there is nothing to acknowledge.", id)
		case e.Acknowledged():
			return AlreadyAcknowledged(id, e.AcknowledgedBy, e.AcknowledgedAt, loc)
		}
	}
	return nil
}

// AlreadyAcknowledged is the ECONFLICT of an event acknowledged before, by
// whom and when (in the building's zone loc).
func AlreadyAcknowledged(id int64, by string, when time.Time, loc *time.Location) error {
	return Errorf(ECONFLICT, "Event %d was already acknowledged by %s on %s.",
		id, by, when.In(loc).Format("2006-01-02 15:04 MST"))
}

// AckJournalDetail is the journal detail of event e's acknowledgement with
// note (the "anomaly.acknowledge" entry): the note, the anomalies, the
// event's id at its source and its device, registered or not.
func AckJournalDetail(e *UnlockEvent, note string) map[string]any {
	detail := map[string]any{"note": note, "anomalies": e.Anomalies, "event_id": e.EventID}
	if e.DeviceID != 0 {
		detail["device_id"] = e.DeviceID
	} else {
		detail["device_ref"] = e.DeviceRef
	}
	return detail
}
