package web

// Unlock history: the history page and its live rows, the CSV
// export, the building's unlock settings, the import of a vendor's CSV export,
// and the unlock part of the building and device pages.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/ingest"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// UnlocksKey names one building's unlock history: notified after events of
// the building are recorded.
func UnlocksKey(buildingID int64) string { return fmt.Sprintf("unlocks:%d", buildingID) }

// UnlocksAllKey wakes every history page: for a transport that records events
// without knowing their building (a device's MQTT events name only the device).
const UnlocksAllKey = "unlocks"

// LiveUnlocks wraps a transport's event sink so that, once events are
// committed, the history pages showing them wake at once instead of on their
// next one-second re-read.
func LiveUnlocks(sink doorledger.EventSink, hub *Hub) doorledger.EventSink {
	return liveUnlocks{sink: sink, hub: hub}
}

type liveUnlocks struct {
	sink doorledger.EventSink
	hub  *Hub
}

// IngestBusy passes on the sink's (doorledger.BusySink), which the
// transports could not see through this wrapper otherwise.
func (l liveUnlocks) IngestBusy() bool {
	b, ok := l.sink.(doorledger.BusySink)
	return ok && b.IngestBusy()
}

func (l liveUnlocks) RecordUnlocks(ctx context.Context, events []doorledger.UnlockEvent) error {
	if err := l.sink.RecordUnlocks(ctx, events); err != nil {
		return err
	}
	l.hub.Notify(UnlocksAllKey)
	return nil
}

// History summaries on the building and device pages.
const (
	summaryDays   = 30
	summaryEvents = 10
	// The building page counts open anomalies up to this ("1000+").
	openAnomaliesMax = 1000
)

// unlockSummary loads the unlock part of the building page (deviceID 0) or of
// one device's page: the last 30 days' chart, and the latest anomalies of the
// building or the device's latest events. It is nil, without error, when the
// user may not read unlock events (installers) or there is no unlock service.
func (s *Server) unlockSummary(ctx context.Context, unlocks doorledger.UnlockService, b *doorledger.Building, deviceID int64, devices []*doorledger.Device) (*views.UnlockSummary, error) {
	u := doorledger.UserFromContext(ctx)
	if unlocks == nil || u == nil || u.Role == doorledger.RoleInstaller {
		return nil, nil
	}
	loc := b.Location()
	sum := &views.UnlockSummary{Building: b, DeviceID: deviceID, Devices: map[int64]*doorledger.Device{},
		LastUnlock: map[int64]*doorledger.UnlockEvent{}, CanManage: doorledger.CanManage(u)}
	for _, d := range devices {
		if !d.Retired {
			sum.Devices[d.ID] = d
		}
	}
	var err error
	if sum.Days, err = unlocks.DailyCounts(ctx, b.ID, deviceID, summaryDays); err != nil {
		return nil, err
	}
	if len(sum.Days) > 0 {
		sum.Since = sum.Days[0].Date
	} else {
		sum.Since = s.now().In(loc).AddDate(0, 0, 1-summaryDays).Format("2006-01-02")
	}
	// The building page lists its open anomalies, however old: they stay
	// until a manager says what was done about them.
	f := doorledger.UnlockFilter{BuildingID: b.ID, DeviceID: deviceID, Limit: summaryEvents}
	if deviceID == 0 {
		f.OpenOnly = true
		sum.OpenMax = openAnomaliesMax
		if sum.OpenAnomalies, err = unlocks.CountOpenAnomalies(ctx, b.ID, openAnomaliesMax); err != nil {
			return nil, err
		}
	}
	page, err := unlocks.History(ctx, f)
	if err != nil {
		return nil, err
	}
	sum.Events = page.Events
	if deviceID == 0 {
		last, err := unlocks.LastUnlocks(ctx, b.ID)
		if err != nil {
			return nil, err
		}
		for id, e := range last {
			if sum.Devices[id] != nil {
				sum.LastUnlock[id] = e
			}
		}
	}
	return sum, nil
}

// unlockFilterFields are the query parameters of the history's filter.
var unlockFilterFields = []string{"device", "device_ref", "from", "to", "method", "result", "anomalies", "anomaly"}

// unlockFilter reads the history filter and cursor from the query. The form
// keeps what was asked, to show it again; a device or cursor that cannot be
// read is an EINVALID by field (the service checks the rest).
func unlockFilter(c echo.Context, buildingID int64) (doorledger.UnlockFilter, views.Form, error) {
	f := views.Form{Values: map[string]string{}}
	for _, n := range unlockFilterFields {
		f.Values[n] = strings.TrimSpace(c.QueryParam(n))
	}
	flt := doorledger.UnlockFilter{BuildingID: buildingID, DeviceRef: f.Value("device_ref"),
		From: f.Value("from"), To: f.Value("to"), Method: f.Value("method"),
		Result: doorledger.UnlockResult(f.Value("result")), AnomaliesOnly: f.Value("anomalies") != "", Anomaly: f.Value("anomaly"),
		OpenOnly: f.Value("anomalies") == "open"}
	v := doorledger.Validation{}
	if s := f.Value("device"); s != "" {
		if id, err := strconv.ParseInt(s, 10, 64); err != nil || id <= 0 {
			v.Add("device", "Choose a device from the list.")
		} else {
			flt.DeviceID = id
		}
	}
	after, err := doorledger.ParseUnlockCursor(c.QueryParam("after"))
	if err != nil {
		v.Add("after", doorledger.ErrorMessage(err))
	}
	flt.After = after
	return flt, f, v.Err()
}

// filterQuery encodes the filter's non-empty values (no cursor), for links.
func filterQuery(f views.Form) string {
	q := url.Values{}
	for _, n := range unlockFilterFields {
		if s := f.Value(n); s != "" {
			q.Set(n, s)
		}
	}
	return q.Encode()
}

// deviceMap indexes devices by id.
func deviceMap(list []*doorledger.Device) map[int64]*doorledger.Device {
	m := make(map[int64]*doorledger.Device, len(list))
	for _, d := range list {
		m[d.ID] = d
	}
	return m
}

// unlockRows reads one page of history for the filter; ack offers managers
// the acknowledgement of its open anomalies. list is the building's devices
// when the caller has them already (nil: read them).
func unlockRows(ctx context.Context, unlocks doorledger.UnlockService, devices doorledger.DeviceService, b *doorledger.Building, flt doorledger.UnlockFilter, query string, ack views.AckControls, list []*doorledger.Device) (*views.UnlockRowsView, error) {
	page, err := unlocks.History(ctx, flt)
	if err != nil {
		return nil, err
	}
	if list == nil {
		if list, err = devices.FindDevices(ctx, doorledger.DeviceFilter{BuildingID: b.ID}); err != nil {
			return nil, err
		}
	}
	return &views.UnlockRowsView{BuildingID: b.ID, Loc: b.Location(), Events: page.Events, Devices: deviceMap(list),
		Query: query, Next: page.Next.String(), Paged: !flt.After.IsZero(), Ack: ack, OpenOnly: flt.OpenOnly}, nil
}

// ackControls are the acknowledgement forms' settings for a history page of
// the building, returning to back.
func ackControls(c echo.Context, b *doorledger.Building, back string) views.AckControls {
	csrf, _ := c.Get(csrfKey).(string)
	return views.AckControls{BuildingID: b.ID, CSRF: csrf, CanManage: doorledger.CanManage(doorledger.UserFromContext(c.Request().Context())), Back: back}
}

// renderUnlocks shows the history page for the filter, or the filter's
// problems beside its fields (422) when ferr is a problem with it.
func (s *Server) renderUnlocks(c echo.Context, unlocks doorledger.UnlockService, devices doorledger.DeviceService, b *doorledger.Building, flt doorledger.UnlockFilter, f views.Form, ferr error) error {
	ctx := c.Request().Context()
	list, err := devices.FindDevices(ctx, doorledger.DeviceFilter{BuildingID: b.ID})
	if err != nil {
		return err
	}
	v := views.UnlocksView{Building: b, Devices: list, Filter: f, Live: flt.After.IsZero(),
		CanManage: doorledger.CanManage(doorledger.UserFromContext(ctx))}
	status := http.StatusOK
	if ferr == nil {
		query := filterQuery(f)
		v.Rows, ferr = unlockRows(ctx, unlocks, devices, b, flt, query, ackControls(c, b, views.UnlocksURL(b.ID, query, flt.After.String())), list)
	}
	if ferr != nil {
		if !formError(&v.Filter, ferr) {
			return ferr
		}
		v.Rows, status = nil, formStatus(ferr)
	}
	return render(c, status, views.UnlocksPage(s.page(c, "Unlock history: "+b.Name, "buildings"), v))
}

// unlockBuilding reads the building of the path: 404 for one the user may not see.
func unlockBuilding(c echo.Context, buildings doorledger.BuildingService) (*doorledger.Building, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return nil, err
	}
	return buildings.FindBuildingByID(c.Request().Context(), id)
}

func (s *Server) handleUnlocks(buildings doorledger.BuildingService, devices doorledger.DeviceService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		flt, f, ferr := unlockFilter(c, b.ID)
		return s.renderUnlocks(c, unlocks, devices, b, flt, f, ferr)
	}
}

// handleUnlocksEvents streams the newest page of the filtered history: it is
// sent again whenever it changes (a new event, a purge), woken by the hub or
// the stream's tick. A cursor in the query is ignored: older pages do not move.
func (s *Server) handleUnlocksEvents(buildings doorledger.BuildingService, devices doorledger.DeviceService, unlocks doorledger.UnlockService, users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		flt, f, err := unlockFilter(c, b.ID)
		if err != nil {
			return err
		}
		flt.After = doorledger.UnlockCursor{}
		query := filterQuery(f)
		// Check the filter and access before the stream starts: afterwards an
		// error can only end it.
		check := flt
		check.Limit = 1
		if _, err := unlocks.History(c.Request().Context(), check); err != nil {
			return err
		}
		ack := ackControls(c, b, views.UnlocksURL(b.ID, query, ""))
		return s.stream(c, users, "rows", []string{UnlocksKey(b.ID), UnlocksAllKey}, func(ctx context.Context) (templ.Component, bool, error) {
			rows, err := unlockRows(ctx, unlocks, devices, b, flt, query, ack, nil)
			if err != nil {
				return nil, true, err
			}
			return views.UnlockRows(*rows), false, nil
		})
	}
}

// attachment is the response of a download, started by the first write: an
// error before any byte is written can still become an error page.
type attachment struct {
	c           echo.Context
	contentType string
	name        string
	started     bool
}

func (a *attachment) Write(p []byte) (int, error) {
	if !a.started {
		a.started = true
		h := a.c.Response().Header()
		h.Set(echo.HeaderContentType, a.contentType)
		h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", a.name))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		a.c.Response().WriteHeader(http.StatusOK)
	}
	return a.c.Response().Write(p)
}

// handleUnlocksCSV streams the filtered history as CSV straight to the
// response: ExportCSV reads it page by page, so memory stays constant
// however many rows there are.
func (s *Server) handleUnlocksCSV(buildings doorledger.BuildingService, devices doorledger.DeviceService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		flt, f, ferr := unlockFilter(c, b.ID)
		if ferr != nil {
			return s.renderUnlocks(c, unlocks, devices, b, flt, f, ferr)
		}
		flt.After = doorledger.UnlockCursor{}
		name := fmt.Sprintf("unlocks-building-%d-%s.csv", b.ID, s.now().In(b.Location()).Format("20060102-150405"))
		w := &attachment{c: c, contentType: "text/csv; charset=utf-8", name: name}
		n, err := unlocks.ExportCSV(c.Request().Context(), flt, w)
		switch {
		case err != nil && !w.started:
			if doorledger.ErrorCode(err) == doorledger.EINVALID {
				return s.renderUnlocks(c, unlocks, devices, b, flt, f, err)
			}
			return err
		case err != nil:
			// The status is sent: the client sees a cut file (no final newline).
			s.log.Error("unlock export cut short", "building", b.ID, "rows", n, "err", err)
		}
		return nil
	}
}

// unlockSettingsFields are the settings form's fields.
var unlockSettingsFields = []string{"retention_days", "delivery_hours", "burst_count", "burst_minutes", "alert_board", "heartbeat_seconds"}

func settingsForm(st *doorledger.UnlockSettings) views.Form {
	f := views.Form{Values: map[string]string{
		"retention_days": strconv.Itoa(st.RetentionDays), "delivery_hours": st.DeliveryHours.String(),
		"burst_count": strconv.Itoa(st.BurstCount), "burst_minutes": strconv.Itoa(st.BurstMinutes),
		"heartbeat_seconds": strconv.Itoa(st.HeartbeatSeconds)}}
	if st.AlertBoard {
		f.Values["alert_board"] = "1"
	}
	return f
}

// unlockSettingsInput reads the settings form; every problem is reported at
// once, beside its field.
func unlockSettingsInput(c echo.Context) (doorledger.UnlockSettings, views.Form, error) {
	f := formOf(c, unlockSettingsFields...)
	v := doorledger.Validation{}
	number := func(name string) int {
		n, err := strconv.Atoi(strings.TrimSpace(f.Value(name)))
		if err != nil {
			v.Add(name, "Enter a whole number.")
		}
		return n
	}
	st := doorledger.UnlockSettings{RetentionDays: number("retention_days"), BurstCount: number("burst_count"),
		BurstMinutes: number("burst_minutes"), HeartbeatSeconds: number("heartbeat_seconds"), AlertBoard: f.Value("alert_board") != ""}
	sch, err := doorledger.ParseDeliverySchedule(f.Value("delivery_hours"))
	if err != nil {
		v.Add("delivery_hours", doorledger.ErrorMessage(err))
	}
	st.DeliveryHours = sch
	if err := st.Validate(); err != nil {
		for k, msg := range doorledger.ErrorFields(err) {
			v.Add(k, msg)
		}
	}
	return st, f, v.Err()
}

func (s *Server) handleUnlockSettings(buildings doorledger.BuildingService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		st, err := unlocks.UnlockSettings(c.Request().Context(), b.ID)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.UnlockSettingsPage(s.page(c, "Unlock settings: "+b.Name, "buildings"), b, settingsForm(st)))
	}
}

func (s *Server) handleUnlockSettingsUpdate(buildings doorledger.BuildingService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		st, f, err := unlockSettingsInput(c)
		if err == nil {
			_, err = unlocks.UpdateUnlockSettings(c.Request().Context(), b.ID, st)
		}
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return render(c, formStatus(err), views.UnlockSettingsPage(s.page(c, "Unlock settings: "+b.Name, "buildings"), b, f))
		}
		return s.redirect(c, pathf("/buildings/%d#unlocks", b.ID), "Unlock settings saved.")
	}
}

// Import of a vendor's CSV export.
const (
	maxImportFile   = 20 << 20              // bytes of one uploaded export
	importBodyLimit = maxImportFile + 1<<20 // the multipart request around it
	importTTL       = 30 * time.Minute      // how long an upload waits for its mapping
	maxStashed      = 100 << 20             // bytes of uploads held at once, all users together
	previewRows     = 10
)

// importStash holds uploaded exports between the preview and the import, in
// memory, under a random token that only the user who uploaded the file may
// use, for that building, for importTTL. Each user has at most one upload
// waiting (a new one replaces it), and the total is bounded (the oldest
// upload is dropped first). Nothing reaches the disk; a restart forgets the
// uploads, and the manager uploads again. Behind a load balancer the two
// steps need the same instance (sticky sessions).
type importStash struct {
	mu    sync.Mutex
	files map[string]*stashedFile
	total int64
}

type stashedFile struct {
	userID, buildingID int64
	name               string
	data               []byte
	comma              rune
	at                 time.Time
}

func newImportStash() *importStash { return &importStash{files: map[string]*stashedFile{}} }

func (st *importStash) dropLocked(token string) {
	if f := st.files[token]; f != nil {
		st.total -= int64(len(f.data))
		delete(st.files, token)
	}
}

// put keeps f and returns its token.
func (st *importStash) put(f *stashedFile) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	st.mu.Lock()
	defer st.mu.Unlock()
	for t, old := range st.files {
		if old.userID == f.userID || f.at.Sub(old.at) > importTTL {
			st.dropLocked(t)
		}
	}
	for st.total+int64(len(f.data)) > maxStashed && len(st.files) > 0 {
		oldest := ""
		for t, old := range st.files {
			if oldest == "" || old.at.Before(st.files[oldest].at) {
				oldest = t
			}
		}
		st.dropLocked(oldest)
	}
	st.files[token] = f
	st.total += int64(len(f.data))
	return token, nil
}

// get returns the upload of token if this user made it for this building and
// it has not expired.
func (st *importStash) get(token string, userID, buildingID int64, now time.Time) *stashedFile {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.files[token]
	if f == nil || f.userID != userID || f.buildingID != buildingID {
		return nil
	}
	if now.Sub(f.at) > importTTL {
		st.dropLocked(token)
		return nil
	}
	return f
}

func (st *importStash) drop(token string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropLocked(token)
}

// importFields labels the fields of an event for the mapping form.
var importFields = map[string]string{
	ingest.FieldOccurredAt: "Time of the event (required)",
	ingest.FieldResult:     "Result: granted or denied (required)",
	ingest.FieldDevice:     "Device serial number (this or the device id)",
	ingest.FieldDeviceID:   "Doorledger device id",
	ingest.FieldMethod:     "Method (optional)",
	ingest.FieldActorRef:   "Courier or package reference (optional)",
	ingest.FieldEventID:    "Event id (optional: made from the row when absent)",
}

func commaLabel(r rune) string {
	switch r {
	case '\t':
		return "tabs"
	case ';':
		return "semicolons"
	case ',':
		return "commas"
	}
	return strconv.QuoteRune(r)
}

// importProblems splits an import error into the problems by line, in line
// order, and the mapping's problems, beside their selects (col_<field>).
func importProblems(f *views.Form, err error) []views.ImportProblem {
	var out []views.ImportProblem
	lineOf := func(where string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(where, "line "))
		return n
	}
	for where, msg := range doorledger.ErrorFields(err) {
		if _, ok := importFields[where]; ok {
			if f.Errors == nil {
				f.Errors = map[string]string{}
			}
			f.Errors["col_"+where] = msg
			continue
		}
		out = append(out, views.ImportProblem{Where: where, Message: msg})
	}
	slices.SortFunc(out, func(a, b views.ImportProblem) int {
		if c := cmp.Compare(lineOf(a.Where), lineOf(b.Where)); c != 0 {
			return c
		}
		return strings.Compare(a.Where, b.Where)
	})
	if len(out) != 1 || len(f.Errors) > 0 {
		f.Error = doorledger.ErrorMessage(err) // one problem alone is said by the list
	}
	return out
}

// importPreview reads the kept file's first rows for the mapping form.
func importPreview(token string, file *stashedFile) (*views.ImportPreview, error) {
	pv, err := ingest.PreviewCSV(bytes.NewReader(file.data), previewRows)
	if err != nil {
		return nil, err
	}
	return previewView(token, file, pv), nil
}

func previewView(token string, file *stashedFile, pv *ingest.CSVPreview) *views.ImportPreview {
	v := &views.ImportPreview{Token: token, FileName: file.name, Size: int64(len(file.data)), Comma: commaLabel(pv.Comma),
		Header: pv.Header, Rows: pv.Rows}
	for _, name := range ingest.CSVFields {
		v.Fields = append(v.Fields, views.ImportField{Name: name, Label: importFields[name]})
	}
	return v
}

func (s *Server) importPage(c echo.Context, status int, v views.ImportView) error {
	return render(c, status, views.ImportPage(s.page(c, "Import unlock events: "+v.Building.Name, "buildings"), v))
}

// uploadError re-renders the upload form with err: its message beside the
// file field, and each problem by line.
func (s *Server) uploadError(c echo.Context, b *doorledger.Building, err error) error {
	if doorledger.ErrorCode(err) != doorledger.EINVALID {
		return err
	}
	v := views.ImportView{Building: b}
	v.Problems = importProblems(&v.Form, err)
	v.Form.Errors = map[string]string{"file": doorledger.ErrorMessage(err)}
	v.Form.Error = ""
	return s.importPage(c, formStatus(err), v)
}

func (s *Server) handleImportPage(buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		return s.importPage(c, http.StatusOK, views.ImportView{Building: b})
	}
}

// handleImportPreview takes the upload, shows its first rows and the guessed
// mapping, and keeps the file for the import.
func (s *Server) handleImportPreview(buildings doorledger.BuildingService, stash *importStash) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		u := doorledger.UserFromContext(c.Request().Context())
		fh, err := c.FormFile("file")
		if err != nil || fh.Size == 0 && fh.Filename == "" {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return s.uploadError(c, b, doorledger.Errorf(doorledger.EINVALID, "Choose the CSV file to upload."))
		}
		if fh.Size > maxImportFile {
			return s.uploadError(c, b, doorledger.Errorf(doorledger.EINVALID, "The file is larger than 20 MB: split it into smaller exports."))
		}
		r, err := fh.Open()
		if err != nil {
			return fmt.Errorf("open upload: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(r, maxImportFile+1))
		r.Close()
		if err != nil {
			return fmt.Errorf("read upload: %w", err)
		}
		file := &stashedFile{userID: u.ID, buildingID: b.ID, name: fh.Filename, data: data, at: time.Now()}
		pv, err := ingest.PreviewCSV(bytes.NewReader(data), previewRows)
		if err != nil {
			return s.uploadError(c, b, err)
		}
		file.comma = pv.Comma
		token, err := stash.put(file)
		if err != nil {
			return err
		}
		v := views.ImportView{Building: b, Preview: previewView(token, file, pv), Form: views.Form{Values: map[string]string{}}}
		for field, col := range pv.Guess {
			v.Form.Values["col_"+field] = strconv.Itoa(col)
		}
		return s.importPage(c, http.StatusOK, v)
	}
}

// handleImport parses the kept file with the chosen mapping and records all
// of it, or nothing: the problems are listed by line.
func (s *Server) handleImport(buildings doorledger.BuildingService, unlocks doorledger.UnlockService, stash *importStash) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		u := doorledger.UserFromContext(ctx)
		names := []string{"token", "time_layout"}
		for _, fld := range ingest.CSVFields {
			names = append(names, "col_"+fld)
		}
		f := formOf(c, names...)
		token := f.Value("token")
		file := stash.get(token, u.ID, b.ID, time.Now())
		if file == nil {
			return s.uploadError(c, b, doorledger.Errorf(doorledger.EINVALID,
				"The uploaded file is no longer here (uploads are kept %d minutes, and not across a restart): upload it again.", int(importTTL/time.Minute)))
		}
		m := ingest.CSVMapping{Columns: map[string]int{}, Comma: file.comma, Location: b.Location(), TimeLayout: strings.TrimSpace(f.Value("time_layout"))}
		bad := doorledger.Validation{}
		for _, fld := range ingest.CSVFields {
			if s := f.Value("col_" + fld); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil {
					bad.Add(fld, "Choose a column from the list.")
					continue
				}
				m.Columns[fld] = n
			}
		}
		err = bad.Err()
		var imp *doorledger.UnlockImport
		if err == nil {
			imp, err = ingest.ParseCSV(bytes.NewReader(file.data), m)
		}
		var res *doorledger.ImportResult
		if err == nil {
			sum := sha256.Sum256(file.data)
			imp.BuildingID, imp.FileName, imp.SHA256 = b.ID, file.name, hex.EncodeToString(sum[:])
			res, err = unlocks.ImportUnlocks(ctx, *imp)
		}
		if err != nil {
			if doorledger.ErrorCode(err) != doorledger.EINVALID {
				return err
			}
			v := views.ImportView{Building: b, Form: f}
			v.Problems = importProblems(&v.Form, err)
			var perr error
			if v.Preview, perr = importPreview(token, file); perr != nil {
				return s.uploadError(c, b, perr)
			}
			return s.importPage(c, formStatus(err), v)
		}
		stash.drop(token)
		s.hub.Notify(UnlocksKey(b.ID))
		return s.redirect(c, pathf("/buildings/%d/unlocks", b.ID), fmt.Sprintf("Imported %s: %d events, %d new, %d already recorded, %d flagged as anomalies.",
			file.name, res.Events, res.Inserted, res.Duplicates, res.Anomalous))
	}
}

// Acknowledging anomalies: a manager says what was done about a flagged
// event, beside it on the building page and in the history (htmx swaps the
// answer in place), or about every open anomaly of a history page at once.

func (s *Server) handleAnomalyAck(buildings doorledger.BuildingService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		id, err := pathID(c, "event")
		if err != nil {
			return err
		}
		return s.acknowledge(c, unlocks, b, []int64{id}, false)
	}
}

func (s *Server) handleAnomalyAckAll(buildings doorledger.BuildingService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		form, err := c.FormParams()
		if err != nil {
			return doorledger.Errorf(doorledger.EINVALID, "The form could not be read.")
		}
		var ids []int64
		for _, v := range form["event"] {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return doorledger.Errorf(doorledger.EINVALID, "%q is not an event id.", v)
			}
			ids = append(ids, id)
		}
		return s.acknowledge(c, unlocks, b, ids, true)
	}
}

// acknowledge records the note for the events and answers: for htmx, the
// fragment that replaces the form (the acknowledgement, or the form again
// with its error beside the note and the note kept, sent as 200 because htmx
// swaps nothing on an error status); without htmx, a redirect back, or the
// form on a page of its own (422). Events the user may not see go to the
// error handler (404), as does the board (the route is for managers).
func (s *Server) acknowledge(c echo.Context, unlocks doorledger.UnlockService, b *doorledger.Building, ids []int64, all bool) error {
	f := formOf(c, "note")
	back := ackBack(b, c.FormValue("back"))
	ack := ackControls(c, b, back)
	htmx := c.Request().Header.Get("HX-Request") != ""
	events, err := unlocks.AcknowledgeAnomalies(c.Request().Context(), b.ID, ids, f.Value("note"))
	if err != nil {
		if !formError(&f, err) {
			return err
		}
		switch {
		case htmx && all:
			return render(c, http.StatusOK, views.AckAllForm(ack, ids, f, false))
		case htmx:
			return render(c, http.StatusOK, views.AnomalyAck(ack, &doorledger.UnlockEvent{ID: ids[0]}, b.Location(), f, false))
		}
		return render(c, formStatus(err), views.AckPage(s.page(c, "Acknowledge anomalies: "+b.Name, "buildings"), b, ack, ids, f))
	}
	s.hub.Notify(UnlocksKey(b.ID)) // live history pages show it at once
	switch {
	case htmx && all:
		return render(c, http.StatusOK, views.AckAllDone(len(events)))
	case htmx:
		return render(c, http.StatusOK, views.AnomalyAck(ack, events[0], b.Location(), views.Form{}, false))
	case len(events) == 1:
		return s.redirect(c, back, "Anomaly acknowledged.")
	}
	return s.redirect(c, back, fmt.Sprintf("%d anomalies acknowledged.", len(events)))
}

// ackBack is where a plain acknowledgement returns: the page it came from
// when that is one of the building's or a device's pages of this portal,
// else the building's open anomalies.
func ackBack(b *doorledger.Building, back string) string {
	own := pathf("/buildings/%d", b.ID)
	ok := strings.HasPrefix(back, "/devices/") ||
		back == own || strings.HasPrefix(back, own+"/") || strings.HasPrefix(back, own+"?") || strings.HasPrefix(back, own+"#")
	if !ok || strings.Contains(back, "//") || strings.ContainsAny(back, "\\\r\n\t") {
		return views.UnlocksURL(b.ID, "anomalies=open", "")
	}
	return back
}
