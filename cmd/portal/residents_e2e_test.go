package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

// residentWorld is a data directory seeded, before the portal starts, through
// the db services with a fixed clock, so that some facts are months old: a
// building whose devices are enabled now, disabled 10 days ago, disabled 91
// days ago, found without consent 3 days ago, and awaiting consent.
type residentWorld struct {
	dir       string
	building  string // "/buildings/N"
	devices   map[string]int64
	forbidden []string // what the public notice must never show
}

const (
	residentAdminPass = "residents admin passphrase"
	residentPublicURL = "http://doors.example.test"
)

func seedResidentWorld(t *testing.T) *residentWorld {
	t.Helper()
	w := &residentWorld{dir: t.TempDir(), devices: map[string]int64{}}
	d := sqlite.NewDB(filepath.Join(w.dir, "doorledger.db"))
	d.PasswordCost = 4
	now0 := time.Now().UTC().Truncate(time.Second)
	clock := now0
	d.Now = func() time.Time { return clock }
	// The mail seeded here is sealed under the data directory's key, as the
	// portal started on it later opens it.
	key, err := vendorSealKey(filepath.Join(w.dir, "vendor.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetSealKey(key); err != nil {
		t.Fatal(err)
	}
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	sys := doorledger.NewSystemContext(ctx, "seed")
	users, buildings := sqlite.NewUserService(d), sqlite.NewBuildingService(d)
	consents, devices, unlocks := sqlite.NewConsentService(d, residentPublicURL), sqlite.NewDeviceService(d), sqlite.NewUnlockService(d)
	outbox := sqlite.NewOutboxService(d)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	user := func(u doorledger.NewUser) *doorledger.User {
		t.Helper()
		created, err := users.CreateUser(sys, u)
		check(err)
		return created
	}
	user(doorledger.NewUser{Email: testAdminEmail, Name: "Administrator", Role: doorledger.RoleAdmin, Password: residentAdminPass})
	b, err := buildings.CreateBuilding(sys, doorledger.BuildingInput{Name: "Linden House", Address: "12 Linden Avenue", Timezone: "America/New_York"})
	check(err)
	w.building = fmt.Sprintf("/buildings/%d", b.ID)
	zoe, err := buildings.AddSigner(sys, b.ID, doorledger.SignerInput{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe.nunez@example.org"})
	check(err)
	ana, err := buildings.AddSigner(sys, b.ID, doorledger.SignerInput{Name: "Ana Theodorou", Title: "Treasurer", Email: "ana.theodorou@example.org"})
	check(err)
	mgr := user(doorledger.NewUser{Email: "mia@example.com", Name: "Mia Manager", Role: doorledger.RoleManager, Password: "correct horse battery"})
	inst := user(doorledger.NewUser{Email: "ivan@fastkey.example", Name: "Ivan Installer", Role: doorledger.RoleInstaller, Company: "FastKey Couriers", Password: "correct horse battery"})
	for _, u := range []*doorledger.User{mgr, inst} {
		check(buildings.GrantAccess(sys, b.ID, u.ID))
	}
	asInst, asMgr := doorledger.NewContextWithUser(ctx, inst), doorledger.NewContextWithUser(ctx, mgr)
	request := func(name, serial string, signer *doorledger.Signer) *doorledger.Consent {
		t.Helper()
		c, err := consents.RequestConsent(asInst, b.ID, doorledger.ConsentRequest{SignerID: signer.ID, Device: doorledger.DeviceDetails{
			Vendor: "Acme Access", Model: "Model " + name, Serial: serial, Location: "intercom panel " + name, Opens: "the lobby door, for couriers"}})
		check(err)
		w.devices[name] = c.DeviceID
		w.forbidden = append(w.forbidden, serial)
		return c
	}
	// sign signs the newest signing link, as the signer would.
	sign := func(c *doorledger.Consent, typed string) {
		t.Helper()
		msgs, err := outbox.PendingMessages(ctx, 100, 10000)
		check(err)
		re := regexp.MustCompile(`/sign/([A-Za-z0-9_-]+)`)
		var token string
		for _, m := range msgs {
			if m := re.FindStringSubmatch(m.Body); m != nil {
				token = m[1]
			}
		}
		sess, err := consents.OpenSigning(ctx, token)
		check(err)
		if sess.Consent.ID != c.ID {
			t.Fatalf("the newest signing link is for consent %d, not %d", sess.Consent.ID, c.ID)
		}
		_, err = consents.Sign(ctx, token, doorledger.SignInput{TypedName: typed, AgreeESign: true, SignaturePNG: signaturePNG(t),
			TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "203.0.113.7", UserAgent: "FixtureBrowser/1.0"})
		check(err)
	}

	clock = now0.AddDate(0, 0, -120)
	sign(request("OLD", "SN-OLD-7731", zoe), "Zoë Nuñez")
	sign(request("RECENT", "SN-RECENT-4410", zoe), "Zoë Nuñez")
	clock = now0.AddDate(0, 0, -91).Add(-time.Hour)
	_, err = devices.SetDesiredState(asMgr, w.devices["OLD"], doorledger.StateDisabled, "removed from the panel")
	check(err)
	clock = now0.AddDate(0, 0, -10)
	_, err = devices.SetDesiredState(asMgr, w.devices["RECENT"], doorledger.StateDisabled, "removed from the panel")
	check(err)
	clock = now0.AddDate(0, 0, -3)
	found, err := devices.RecordFoundDevice(asMgr, b.ID, doorledger.DeviceDetails{Vendor: "Ghostlock", Model: "Model FOUND", Serial: "SN-FOUND-0042", Location: "behind the mailboxes"})
	check(err)
	w.devices["FOUND"] = found.ID
	w.forbidden = append(w.forbidden, "SN-FOUND-0042")
	clock = now0.Add(-2 * time.Hour)
	sign(request("ON", "SN-ON-1001", ana), "Ana Theodorou")
	// Door openings by the enabled device, with courier references.
	for i, ref := range []string{"COURIER-REF-8812", "PKG-77341-XQ", "AMZL-DRV-5523"} {
		check(unlocks.RecordUnlocks(sys, []doorledger.UnlockEvent{{DeviceID: w.devices["ON"], EventID: fmt.Sprintf("seed-%d", i),
			OccurredAt: clock.Add(time.Duration(i) * time.Minute), Method: doorledger.MethodCourierApp, ActorRef: ref, Result: doorledger.UnlockGranted}}))
		w.forbidden = append(w.forbidden, ref)
	}
	clock = now0.Add(-time.Hour)
	request("WAIT", "SN-WAIT-5150", zoe)
	request("WAIT2", "SN-WAIT-5151", zoe)
	w.forbidden = append(w.forbidden, "Zoë Nuñez", "Zoë", "Nuñez", "Ana Theodorou", "zoe.nunez@example.org", "ana.theodorou@example.org",
		"12 Linden Avenue", "203.0.113.7", "FixtureBrowser", "Ivan Installer", "FastKey", "ivan@fastkey.example", "Mia Manager", "mia@example.com")
	return w
}

func (w *residentWorld) start(t *testing.T) (*Portal, *Client, *Client) {
	t.Helper()
	p := MustStartPortal(t, w.dir, "-public-url", residentPublicURL)
	lastPortal = p
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, residentAdminPass)
	mgr := NewClient(t, p.URL)
	mgr.MustLogin("mia@example.com", "correct horse battery")
	return p, admin, mgr
}

var noticeLinkRE = regexp.MustCompile(regexp.QuoteMeta(residentPublicURL) + `(/notice/([0-9a-f]{32}))`)

// noticePath reads the notice's address from the building page (managers).
func (w *residentWorld) noticePath(t *testing.T, mgr *Client) string {
	t.Helper()
	_, body := mgr.Get(w.building)
	m := noticeLinkRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no notice link on the building page:\n%s", body)
	}
	return m[1]
}

// The public notice, over HTTP as a resident with no account reads it: the
// devices that can open a door now, awaiting consent, and disabled or found in
// the last 90 days, not the one disabled 91 days ago; none of the names,
// addresses, IP, serial numbers or courier references of the fixture; a short
// private cache, no cache of a 404; the poster's QR code is the page's
// address on A4 and Letter; a rotated slug is not found at once.
func TestEndToEndResidentNotice(t *testing.T) {
	w := seedResidentWorld(t)
	p, _, mgr := w.start(t)
	notice := w.noticePath(t, mgr)
	resident := NewClient(t, p.URL)

	resp, err := resident.http.Get(p.URL + notice)
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("notice: %d\n%s", resp.StatusCode, page)
	}
	cc := resp.Header.Get("Cache-Control")
	m := regexp.MustCompile(`max-age=(\d+)`).FindStringSubmatch(cc)
	if m == nil || !strings.Contains(cc, "private") {
		t.Errorf("Cache-Control %q: want private with a max-age", cc)
	} else if age, _ := strconv.Atoi(m[1]); age > 60 {
		t.Errorf("Cache-Control %q: max-age over 60 s", cc)
	}
	text := html.UnescapeString(page)
	for _, want := range []string{"Who can open this door?", "Linden House", "Model ON", "Model RECENT", "Model FOUND", "Model WAIT",
		"Enabled: can open the door", "Disabled", "Found without consent", "Awaiting consent", "by the Treasurer", "valid until",
		"from the Board president", "the lobby door, for couriers", "Doors opened by delivery devices in the last 7 days: <strong>3</strong>",
		"Tenant privacy notice", "Report a device that is not listed here"} {
		if !strings.Contains(text, want) {
			t.Errorf("the notice lacks %q", want)
		}
	}
	if strings.Contains(text, "Model OLD") || strings.Contains(text, fmt.Sprintf("#%d<", w.devices["OLD"])) {
		t.Error("the notice lists the device disabled 91 days ago")
	}
	for _, leak := range w.forbidden {
		if strings.Contains(text, leak) || strings.Contains(page, leak) {
			t.Errorf("the notice shows %q", leak)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the notice loads a script")
	}

	// The poster, on both papers: a valid PDF whose QR code is the page's address.
	for _, paper := range []string{"a4", "letter"} {
		resp, err := mgr.http.Get(p.URL + w.building + "/notice/poster.pdf?paper=" + paper)
		if err != nil {
			t.Fatal(err)
		}
		pdf := []byte(readBody(t, resp))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" {
			t.Fatalf("poster %s: %d %s", paper, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		qpdfCheck(t, pdf)
		if got, want := testtool.PDFQRCodes(t, pdf), []string{"QR-Code:" + residentPublicURL + notice}; !slices.Equal(got, want) {
			t.Errorf("poster %s: QR codes %q, want %q", paper, got, want)
		}
	}
	if status, _ := resident.Get(w.building + "/notice/poster.pdf"); status != http.StatusSeeOther {
		t.Errorf("poster without sign-in: %d", status)
	}

	// Rotation: the old address is not found at once, and that answer is not cached.
	if status, loc, body := mgr.Post(w.building, w.building+"/notice/rotate", nil); status != http.StatusSeeOther || !strings.Contains(loc, "#residents") {
		t.Fatalf("rotate: %d %q\n%s", status, loc, body)
	}
	resp, err = resident.http.Get(p.URL + notice)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("old notice after rotation: %d, Cache-Control %q; want 404, no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	fresh := w.noticePath(t, mgr)
	if status, _ := resident.Get(fresh); fresh == notice || status != http.StatusOK {
		t.Errorf("new notice %s: %d", fresh, status)
	}
	if _, body := mgr.Get(w.building + "/audit"); !strings.Contains(body, "notice.rotate") || strings.Contains(body, strings.TrimPrefix(notice, "/notice/")) {
		t.Error("the rotation is not journaled, or the journal shows the old address")
	}

	// The contact line the manager sets is on the notice, one line only.
	if status, _, body := mgr.Post(w.building, w.building+"/notice/contact", url.Values{"contact": {"Management office\r\nEvil: header"}}); status != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "one line") {
		t.Errorf("contact with a line break: %d", status)
	}
	mgr.Post(w.building, w.building+"/notice/contact", url.Values{"contact": {"Management office, 555-0100, office@linden.example"}})
	if _, body := resident.Get(fresh); !strings.Contains(body, "Management office, 555-0100, office@linden.example") {
		t.Error("the contact line is not on the notice")
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func photoPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for x := 0; x < 64; x++ {
		for y := 0; y < 48; y++ {
			img.Set(x, y, color.NRGBA{uint8(x * 4), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A resident's report: sent from the notice with a photo and a contact
// address, it becomes an alert mail to the managers in the outbox; the
// manager sees it as text (no link is made of what the resident typed),
// records the device through the found-device flow and resolves the report,
// which the journal and the audit report include; the resident's address is
// gone. Posts are rate-limited per client and bounded in size.
func TestEndToEndResidentReport(t *testing.T) {
	w := seedResidentWorld(t)
	p, _, mgr := w.start(t)
	notice := w.noticePath(t, mgr)
	resident := NewClient(t, p.URL)
	reportPath := notice + "/report"

	status, _, body := resident.PostMultipart(reportPath, reportPath, url.Values{"location": {""}, "contact": {"nope"}}, nil)
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "Say where you saw the device") || !strings.Contains(body, "plain email address") {
		t.Fatalf("empty report: %d\n%s", status, body)
	}
	where := `grey box behind the mailboxes <script>alert(1)</script> see http://evil.example/x`
	status, _, body = resident.PostMultipart(reportPath, reportPath, url.Values{"location": {where}, "contact": {"resident.4b@example.net"}},
		map[string]map[string][]byte{"photo": {"box.png": photoPNG(t)}})
	if status != http.StatusOK || !strings.Contains(body, "Thank you") {
		t.Fatalf("report: %d\n%s", status, body)
	}
	reportID := regexp.MustCompile(`Report #(\d+)`).FindStringSubmatch(body)[1]

	// The managers' alert is in the outbox (the board is not, by default).
	r := openReader(t, p.DataDir)
	awaitCount(t, r, 1, `SELECT COUNT(*) FROM outbox WHERE to_addr = 'mia@example.com' AND kind = 'alert' AND subject LIKE 'Resident report:%Linden House'`)

	_, page := mgr.Get(w.building)
	if !strings.Contains(page, "Report #"+reportID) || !strings.Contains(page, html.EscapeString("<script>alert(1)</script>")) ||
		strings.Contains(page, `href="http://evil.example`) || !strings.Contains(page, "resident.4b@example.net") {
		t.Fatalf("the report on the building page:\n%s", page)
	}
	photo := regexp.MustCompile(`src="(` + regexp.QuoteMeta(w.building) + `/resident-reports/\d+/photo)"`).FindStringSubmatch(page)
	if photo == nil {
		t.Fatal("no photo on the building page")
	}
	resp, err := mgr.http.Get(p.URL + photo[1])
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("photo: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if status, _ := resident.Get(photo[1]); status != http.StatusSeeOther {
		t.Errorf("photo without sign-in: %d", status)
	}

	// Recorded through the existing found-device flow, then resolved as that device.
	status, loc, body := mgr.Post(w.building, w.building+"/devices/found", url.Values{"vendor": {"Boxwave"}, "model": {"BW-1"}, "serial": {"BW-778"}, "location": {"behind the mailboxes"}})
	if status != http.StatusSeeOther {
		t.Fatalf("record found device: %d\n%s", status, body)
	}
	device := strings.TrimPrefix(loc, "/devices/")
	resolve := w.building + "/resident-reports/" + reportID + "/resolve"
	if status, _, body := mgr.Post(w.building, resolve, url.Values{"outcome": {"found_device"}}); status != http.StatusUnprocessableEntity || !strings.Contains(body, "Choose the found device") {
		t.Fatalf("resolve without the device: %d", status)
	}
	if status, _, body := mgr.Post(w.building, resolve, url.Values{"outcome": {"found_device"}, "found_device": {device}, "note": {"Boxwave relay"}}); status != http.StatusSeeOther {
		t.Fatalf("resolve: %d\n%s", status, body)
	}
	_, page = mgr.Get(w.building)
	if !strings.Contains(page, `<a href="/devices/`+device+`">recorded as found device #`+device+`</a>`) || strings.Contains(page, "resident.4b@example.net") {
		t.Errorf("resolved report on the building page (found device link, contact erased):\n%s", page)
	}
	if _, body := mgr.Get(w.building + "/audit"); !strings.Contains(body, "resident.report") || !strings.Contains(body, "resident.report_resolve") {
		t.Error("the journal lacks the report or its resolution")
	}
	today := time.Now().In(time.FixedZone("EST", -5*3600)).Format("2006-01-02")
	report := requestReport(t, mgr, w.building, "pdf", time.Now().AddDate(0, 0, -2).Format("2006-01-02"), today)
	pdf := download(t, mgr, report, awaitReport(t, mgr, report), ".pdf", "application/pdf")
	text := strings.Join(strings.Fields(pdfText(t, pdf)), " ")
	for _, want := range []string{"Residents' reports of unlisted devices", "#" + reportID, "grey box behind the mailboxes", "recorded as found device #" + device} {
		if !strings.Contains(text, want) {
			t.Errorf("the audit report lacks %q", want)
		}
	}
	if strings.Contains(text, "resident.4b@example.net") {
		t.Error("the audit report shows the resident's address")
	}

	// Bounds: a body over the route's limit is refused before it is read,
	// then the client runs out of posts (5 at once, one each 10 minutes).
	big := bytes.Repeat([]byte("x"), 11<<20)
	status, _, _ = resident.PostMultipart(reportPath, reportPath, url.Values{"location": {"big"}}, map[string]map[string][]byte{"photo": {"big.png": big}})
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("11 MB report: %d, want 413", status)
	}
	limited := false
	for i := 0; i < 6 && !limited; i++ {
		resp, err := resident.http.PostForm(p.URL+reportPath, url.Values{"location": {"spam"}})
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		limited = resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != ""
	}
	if !limited {
		t.Error("no 429 with Retry-After after 8 posts from one client")
	}
}

// residentNotices returns the bodies of the notices in the admins' outbox
// (newest first); mail is only logged in tests, so the Outbox shows bodies.
func residentNotices(t *testing.T, admin *Client) []string {
	t.Helper()
	_, page := admin.Get("/outbox")
	var out []string
	for _, m := range regexp.MustCompile(`(?s)<pre class="mail-body">(.*?)</pre>`).FindAllStringSubmatch(page, -1) {
		if body := html.UnescapeString(m[1]); strings.Contains(body, "news about the delivery devices") {
			out = append(out, body)
		}
	}
	return out
}

// awaitNotice waits, up to a minute from the fact, for a new notice to the
// subscriber that says every one of want; it returns the notice.
func awaitNotice(t *testing.T, admin *Client, r *sql.DB, addr string, seen *int, fact time.Time, want ...string) string {
	t.Helper()
	deadline := fact.Add(time.Minute)
	for {
		var n int
		if err := r.QueryRow(`SELECT COUNT(*) FROM outbox WHERE kind = ? AND to_addr = ?`, doorledger.MailResidentNotice, addr).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > *seen {
			*seen = n
			body := residentNotices(t, admin)[0]
			for _, s := range want {
				if !strings.Contains(body, s) {
					t.Errorf("the notice lacks %q:\n%s", s, body)
				}
			}
			t.Logf("notice %d after %s: %s", n, time.Since(fact).Round(time.Millisecond), strings.Join(want, ", "))
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notice saying %q within a minute of the fact", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A resident subscribes from the notice (double opt-in) and is told, within a
// minute of each fact, when a device is enabled, disabled, found without
// consent, or its consent withdrawn, disputed or lapsed; the unsubscribe link
// of a notice ends it, and no notice follows.
func TestEndToEndResidentSubscription(t *testing.T) {
	w := seedResidentWorld(t)
	p, admin, mgr := w.start(t)
	notice := w.noticePath(t, mgr)
	resident := NewClient(t, p.URL)
	r := openReader(t, p.DataDir)
	const addr = "rita.resident@example.net"

	if status, _, body := resident.Post(notice, notice+"/subscribe", url.Values{"email": {"rita at example"}}); status != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `value="rita at example"`) {
		t.Fatalf("bad address: %d", status)
	}
	if status, _, body := resident.Post(notice, notice+"/subscribe", url.Values{"email": {addr}}); status != http.StatusOK || !strings.Contains(body, "Check your mail") {
		t.Fatalf("subscribe: %d\n%s", status, body)
	}
	confirm := outboxLink(t, admin, doorledger.ResidentConfirmPath)
	if status, body := resident.Get(confirm); status != http.StatusOK || !strings.Contains(body, "Confirm your subscription") {
		t.Fatalf("confirmation page: %d", status)
	}
	if _, body := mgr.Get(w.building); !strings.Contains(body, "<strong>0</strong> residents are subscribed") {
		t.Error("an unconfirmed address is counted")
	}
	if status, _, body := resident.Post(confirm, confirm, nil); status != http.StatusOK || !strings.Contains(body, "You are subscribed") {
		t.Fatalf("confirm: %d\n%s", status, body)
	}
	_, page := mgr.Get(w.building)
	if !strings.Contains(page, "<strong>1</strong> resident is subscribed") || strings.Contains(page, addr) {
		t.Error("the building page does not show the count, or shows the address")
	}
	if _, body := admin.Get("/outbox"); strings.Contains(body, addr) {
		t.Error("the Outbox page shows a subscriber's address")
	}

	seen := 0
	// Enabled: the signer signs the newest request (WAIT2) through its link.
	signByLink := func(serial string) {
		t.Helper()
		_, body := admin.Get("/outbox")
		for _, m := range regexp.MustCompile(`https?://[^/\s]+(/sign/[A-Za-z0-9_-]+)`).FindAllStringSubmatch(html.UnescapeString(body), -1) {
			signer := NewClient(t, p.URL)
			_, page := signer.Get(m[1])
			if !strings.Contains(page, serial) || !strings.Contains(page, "terms_sha256") {
				continue
			}
			terms := regexp.MustCompile(`name="terms_sha256" value="([0-9a-f]{64})"`).FindStringSubmatch(page)[1]
			if status, _, body := signer.Post(m[1], m[1], url.Values{"terms_sha256": {terms}, "typed_name": {"Zoë Nuñez"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status != http.StatusOK {
				t.Fatalf("sign %s: %d\n%s", serial, status, body)
			}
			return
		}
		t.Fatalf("no signing link for %s", serial)
	}
	fact := time.Now()
	signByLink("SN-WAIT-5151")
	awaitNotice(t, admin, r, addr, &seen, fact, "Model WAIT2", "was ENABLED", "by the Board president", "valid until")

	fact = time.Now()
	if status, _, body := mgr.Post(fmt.Sprintf("/devices/%d", w.devices["ON"]), fmt.Sprintf("/devices/%d/revoke", w.devices["ON"]), nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitNotice(t, admin, r, addr, &seen, fact, "Model ON", "was DISABLED")

	fact = time.Now()
	mgr.Post(w.building, w.building+"/devices/found", url.Values{"vendor": {"Boxwave"}, "model": {"BW-1"}, "serial": {"BW-778"}, "location": {"behind the mailboxes"}})
	awaitNotice(t, admin, r, addr, &seen, fact, "Boxwave BW-1", "FOUND WITHOUT CONSENT")

	withdraw := outboxLink(t, admin, "/consent/withdraw/") // of WAIT2, signed above
	fact = time.Now()
	if status, _, body := NewClient(t, p.URL).Post(withdraw, withdraw, url.Values{"reason": {"changed my mind"}}); status != http.StatusOK {
		t.Fatalf("withdraw: %d\n%s", status, body)
	}
	awaitNotice(t, admin, r, addr, &seen, fact, "Model WAIT2", "was WITHDRAWN by the Board president", "was DISABLED")

	signByLink("SN-WAIT-5150")
	awaitNotice(t, admin, r, addr, &seen, time.Now(), "Model WAIT", "was ENABLED")
	dispute := outboxLink(t, admin, "/consent/dispute/")
	fact = time.Now()
	if status, _, body := NewClient(t, p.URL).Post(dispute, dispute, nil); status != http.StatusOK {
		t.Fatalf("dispute: %d\n%s", status, body)
	}
	awaitNotice(t, admin, r, addr, &seen, fact, "Model WAIT", "was DISPUTED", "says they did not sign it", "was DISABLED")

	// Lapsed: the lapse job run with the clock a year on, as a second writer
	// on the same file (the portal's own job would run it at its time).
	later := sqlite.NewDB(filepath.Join(p.DataDir, "doorledger.db"))
	t13 := time.Now().AddDate(1, 1, 0)
	later.Now = func() time.Time { return t13 }
	if err := later.Open(); err != nil {
		t.Fatal(err)
	}
	fact = time.Now()
	n, err := sqlite.NewConsentService(later, residentPublicURL).LapseDue(context.Background())
	later.Close()
	if err != nil || n == 0 {
		t.Fatalf("lapse: %d %v", n, err)
	}
	awaitNotice(t, admin, r, addr, &seen, fact, "LAPSED")

	// Unsubscribe by the link of the last notice: a button, then gone.
	unsubscribe := outboxLink(t, admin, doorledger.ResidentUnsubscribePath)
	if status, body := resident.Get(unsubscribe); status != http.StatusOK || !strings.Contains(body, `<button type="submit">Unsubscribe</button>`) {
		t.Fatalf("unsubscribe page: %d\n%s", status, body)
	}
	if status, _, body := resident.Post(unsubscribe, unsubscribe, nil); status != http.StatusOK || !strings.Contains(body, "You are unsubscribed") {
		t.Fatalf("unsubscribe: %d\n%s", status, body)
	}
	if status, _ := resident.Get(unsubscribe); status != http.StatusNotFound {
		t.Errorf("used unsubscribe link: %d", status)
	}
	if _, body := mgr.Get(w.building); !strings.Contains(body, "<strong>0</strong> residents are subscribed") {
		t.Error("the count did not go down")
	}
	mgr.Post(w.building, w.building+"/devices/found", url.Values{"vendor": {"Boxwave"}, "model": {"BW-2"}, "serial": {"BW-779"}, "location": {"garage"}})
	var last int64
	if err := r.QueryRow(`SELECT MAX(id) FROM audit_entries WHERE action = 'device.found'`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	awaitCount(t, r, 1, `SELECT COUNT(*) FROM resident_notice_cursor WHERE audit_id >= ?`, last)
	var after int
	if err := r.QueryRow(`SELECT COUNT(*) FROM outbox WHERE kind = ? AND to_addr = ?`, doorledger.MailResidentNotice, addr).Scan(&after); err != nil || after != seen {
		t.Errorf("notices after unsubscribing: %d, had %d (%v)", after, seen, err)
	}
	if err := r.QueryRow(`SELECT COUNT(*) FROM resident_subscribers`).Scan(&after); err != nil || after != 0 {
		t.Errorf("subscribers left: %d (%v)", after, err)
	}
}
