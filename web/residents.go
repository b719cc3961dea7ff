package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/reports"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// Residents have no account: the notice is reached by its slug (from the
// poster's QR code), subscriptions by the one-time links mailed to them.
// Every public route is rate-limited per client before its body is read
// (ratelimit.go), its body bounded, and its forms guarded by the CSRF
// middleware like any other (Sec-Fetch-Site, or the form's token).

// Body limits of the residents' forms: a report carries one photo.
const (
	residentReportBodyLimit    = imagecheck.MaxPhotoBytes + 64<<10
	residentSubscribeBodyLimit = 16 << 10
)

// noticeMaxAge is how long a browser may keep the notice page. A rotated
// slug's page is then not found at once (errors are never cached), though a
// browser that read it in the last minute may still show its copy.
const noticeMaxAge = "private, max-age=60"

// renderNotice writes the notice page with its cache header. It is private:
// the page carries this browser's CSRF token for its subscription form.
func renderNotice(c echo.Context, status int, t templ.Component) error {
	var buf bytes.Buffer
	if err := t.Render(c.Request().Context(), &buf); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", noticeMaxAge)
	return c.HTMLBlob(status, buf.Bytes())
}

func csrfOf(c echo.Context) string {
	token, _ := c.Get(csrfKey).(string)
	return token
}

func (s *Server) handleNotice(residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		n, err := residents.PublicNotice(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		return renderNotice(c, http.StatusOK, views.NoticePage(views.NewNoticeView(n, csrfOf(c), views.Form{})))
	}
}

func (s *Server) handleNoticeReportPage(residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		n, err := residents.PublicNotice(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.NoticeReportPage(views.NoticeReportView{BuildingName: n.BuildingName, Slug: n.Slug, CSRF: csrfOf(c)}))
	}
}

// readReportPhoto reads the optional photo of a report through the same
// checks as installation photos (imagecheck), or returns nil.
func readReportPhoto(c echo.Context) (*doorledger.Photo, error) {
	fh, err := c.FormFile("photo")
	if errors.Is(err, http.ErrMissingFile) || errors.Is(err, http.ErrNotMultipart) || (err == nil && fh.Size == 0 && fh.Filename == "") {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if fh.Size > imagecheck.MaxPhotoBytes {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The photo is larger than 10 MB.")
	}
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, imagecheck.MaxPhotoBytes+1))
	if err != nil {
		return nil, err
	}
	data, ct, err := imagecheck.Photo(buf)
	if err != nil {
		return nil, err
	}
	return &doorledger.Photo{ContentType: ct, Data: data}, nil
}

func (s *Server) handleNoticeReport(residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		slug := c.Param("slug")
		n, err := residents.PublicNotice(ctx, slug)
		if err != nil {
			return err
		}
		f := formOf(c, "location", "contact")
		in := doorledger.ResidentReportInput{Location: f.Value("location"), Contact: f.Value("contact")}
		photo, perr := readReportPhoto(c)
		if perr == nil {
			in.Photo = photo
			var r *doorledger.ResidentReport
			if r, err = residents.ReportDevice(ctx, slug, in); err == nil {
				return render(c, http.StatusOK, views.ResidentMessagePage("Thank you: your report was sent",
					"Report #"+strconv.FormatInt(r.ID, 10)+" is with the managers of "+n.BuildingName+". They will check where you said and record the device if it is a delivery device nobody consented to.", slug))
			}
		} else {
			if doorledger.ErrorCode(perr) != doorledger.EINVALID {
				return perr
			}
			// Check the other fields too, so that every problem shows at once.
			err = in.Validate()
			fields := doorledger.ErrorFields(err)
			if fields == nil {
				fields = map[string]string{}
			}
			fields["photo"] = doorledger.ErrorMessage(perr)
			err = &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields.", Fields: fields}
		}
		if !formError(&f, err) {
			return err
		}
		if f.Errors["photo"] == "" && photo != nil {
			f.Values["photo_note"] = "Please choose the photo again: a browser does not keep files after an error."
		}
		return render(c, formStatus(err), views.NoticeReportPage(views.NoticeReportView{BuildingName: n.BuildingName, Slug: slug, CSRF: csrfOf(c), Form: f}))
	}
}

func (s *Server) handleNoticeSubscribe(residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		slug := c.Param("slug")
		f := formOf(c, "email")
		err := residents.Subscribe(ctx, slug, f.Value("email"))
		if err == nil {
			return render(c, http.StatusOK, views.ResidentMessagePage("Check your mail",
				"If "+f.Value("email")+" is not subscribed yet, a link to confirm is on its way to it. Nothing is sent until you confirm.", slug))
		}
		if !formError(&f, err) {
			return err
		}
		n, nerr := residents.PublicNotice(ctx, slug)
		if nerr != nil {
			return nerr
		}
		return render(c, formStatus(err), views.NoticePage(views.NewNoticeView(n, csrfOf(c), f)))
	}
}

// residentLinkPaths are the mailed links' pages, by purpose.
var residentLinkPaths = map[string]string{"confirm": doorledger.ResidentConfirmPath, "unsubscribe": doorledger.ResidentUnsubscribePath}

func (s *Server) handleResidentLinkPage(residents doorledger.ResidentService, purpose string) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		link, err := residents.OpenSubscriptionLink(c.Request().Context(), token)
		if err == nil && link.Purpose != purpose {
			err = doorledger.Errorf(doorledger.ENOTFOUND, "This link does not work (any more).")
		}
		if err != nil {
			return err
		}
		if link.Done {
			return render(c, http.StatusOK, views.ResidentMessagePage("You are subscribed",
				"You will get an email when the door devices of "+link.BuildingName+" change.", link.NoticeSlug))
		}
		return render(c, http.StatusOK, views.ResidentLinkPage(csrfOf(c), residentLinkPaths[purpose]+token, link))
	}
}

func (s *Server) handleResidentLink(residents doorledger.ResidentService, purpose string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, token := c.Request().Context(), c.Param("token")
		if purpose == "confirm" {
			link, err := residents.ConfirmSubscription(ctx, token)
			if err != nil {
				return err
			}
			return render(c, http.StatusOK, views.ResidentMessagePage("You are subscribed",
				"You will get an email when a delivery device of "+link.BuildingName+" is enabled, disabled or found without consent, or its consent ends. Every one has a link to unsubscribe.", link.NoticeSlug))
		}
		link, err := residents.Unsubscribe(ctx, token)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.ResidentMessagePage("You are unsubscribed",
			"You will get no more notices about "+link.BuildingName+", and your address was deleted.", link.NoticeSlug))
	}
}

// residentsPanel loads the building page's residents section (managers).
func (s *Server) residentsPanel(ctx context.Context, residents doorledger.ResidentService, buildingID int64, devices []*doorledger.Device) (*views.ResidentsPanel, error) {
	settings, err := residents.NoticeSettings(ctx, buildingID)
	if err != nil {
		return nil, err
	}
	p := &views.ResidentsPanel{Settings: settings}
	for _, d := range devices {
		if d.InstallerID == 0 { // recorded as found by a manager
			p.FoundDevices = append(p.FoundDevices, d)
		}
	}
	return p, nil
}

func (s *Server) handleNoticeRotate(residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		if _, err := residents.RotateNoticeSlug(c.Request().Context(), id); err != nil {
			return err
		}
		return s.redirect(c, pathf("/buildings/%d#residents", id),
			"The notice has a new address; the old one no longer works. Print the new poster and replace the ones up.")
	}
}

func (s *Server) handleNoticeContact(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "contact")
		if err := p.residents.SetNoticeContact(c.Request().Context(), id, f.Value("contact")); err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.rerenderBuilding(c, p, id, err, func(v *views.BuildingView) {
				if v.Residents != nil {
					v.Residents.ContactForm = f
				}
			})
		}
		return s.redirect(c, pathf("/buildings/%d#residents", id), "Contact line saved: the notice shows it now.")
	}
}

func (s *Server) handleNoticePoster(buildings doorledger.BuildingService, residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		b, err := buildings.FindBuildingByID(ctx, id)
		if err != nil {
			return err
		}
		settings, err := residents.NoticeSettings(ctx, id)
		if err != nil {
			return err
		}
		paper := c.QueryParam("paper")
		if paper == "" {
			paper = reports.PaperA4
		}
		if paper != reports.PaperA4 && paper != reports.PaperLetter {
			return doorledger.Errorf(doorledger.EINVALID, "Choose A4 or Letter paper.")
		}
		var buf bytes.Buffer
		if err := reports.NoticePosterPDF(&buf, reports.Poster{BuildingName: b.Name, URL: settings.URL, Contact: settings.Contact,
			Paper: paper, CreatedAt: s.now()}); err != nil {
			return err
		}
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Disposition", `attachment; filename="notice-poster-`+strconv.FormatInt(id, 10)+`-`+paper+`.pdf"`)
		return c.Blob(http.StatusOK, "application/pdf", buf.Bytes())
	}
}

func (s *Server) handleResidentReportPhoto(residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		report, err := pathID(c, "report")
		if err != nil {
			return err
		}
		p, err := residents.ResidentReportPhoto(c.Request().Context(), id, report)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "private, no-store")
		return c.Blob(http.StatusOK, p.ContentType, p.Data)
	}
}

func (s *Server) handleResidentReportResolve(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		report, err := pathID(c, "report")
		if err != nil {
			return err
		}
		f := formOf(c, "outcome", "found_device", "note")
		device, _ := strconv.ParseInt(f.Value("found_device"), 10, 64)
		r := doorledger.ReportResolution{Outcome: f.Value("outcome"), FoundDeviceID: device, Note: f.Value("note")}
		if err := p.residents.ResolveResidentReport(c.Request().Context(), id, report, r); err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.rerenderBuilding(c, p, id, err, func(v *views.BuildingView) {
				if v.Residents != nil {
					v.Residents.ResolveForms = map[int64]views.Form{report: f}
				}
			})
		}
		return s.redirect(c, pathf("/buildings/%d#resident-report-%d", id, report), "Report #"+strconv.FormatInt(report, 10)+" resolved.")
	}
}

// maskResidentMail hides residents' addresses in the admins' outbox list:
// subscribers' addresses are shown on no page.
func maskResidentMail(msgs []*doorledger.Message) {
	for _, m := range msgs {
		if m.Kind == doorledger.MailResidentConfirm || m.Kind == doorledger.MailResidentNotice {
			m.To = "a resident (address not shown)"
		}
	}
}
