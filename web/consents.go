package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/reports"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// Upload limits of the consent routes: up to MaxPhotos photos of MaxPhotoSize,
// and a signature data URL (base64 of at most 1 MB).
const (
	consentRequestBodyLimit = doorledger.MaxPhotos*doorledger.MaxPhotoSize + paperBodyLimit + doorledger.MaxPaperPDFSize
	signBodyLimit           = 2 << 20
)

var consentFields = []string{"vendor", "model", "serial", "location", "opens", "signer_id", "mode", "paper_date"}

func (s *Server) handleConsentNew(buildings doorledger.BuildingService, policies doorledger.PolicyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		v, err := s.requestView(c, buildings, policies, id, views.Form{})
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.ConsentRequestPage(s.page(c, "Request consent", "buildings"), v))
	}
}

// requestView is the request form of a building with its consent policy and
// the portal's proposal of signers (checked when the form is new).
func (s *Server) requestView(c echo.Context, buildings doorledger.BuildingService, policies doorledger.PolicyService, id int64, f views.Form) (views.ConsentRequestView, error) {
	ctx := c.Request().Context()
	b, err := buildings.FindBuildingByID(ctx, id)
	if err != nil {
		return views.ConsentRequestView{}, err
	}
	p, err := policies.FindConsentPolicy(ctx, id)
	if err != nil {
		return views.ConsentRequestView{}, err
	}
	v := views.ConsentRequestView{Building: b, Form: f, Policy: p, Chosen: map[int64]bool{}}
	if len(f.Values) == 0 {
		for _, sg := range doorledger.ProposeSigners(p, b.Signers) {
			v.Chosen[sg.ID] = true
		}
	} else {
		for _, raw := range c.Request().Form["signer_id"] {
			if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
				v.Chosen[n] = true
			}
		}
	}
	return v, nil
}

// readPhotos validates each uploaded photo by its bytes and re-encodes it.
func readPhotos(c echo.Context) ([]doorledger.Photo, error) {
	form, err := c.MultipartForm()
	if err != nil {
		if err == http.ErrNotMultipart {
			return nil, nil
		}
		return nil, fmt.Errorf("read upload: %w", err)
	}
	files := form.File["photos"]
	if len(files) > doorledger.MaxPhotos {
		return nil, fmt.Errorf("attach at most %d photos", doorledger.MaxPhotos)
	}
	var photos []doorledger.Photo
	for _, fh := range files {
		if fh.Size == 0 && fh.Filename == "" {
			continue // the empty file field of a form sent without photos
		}
		if fh.Size > doorledger.MaxPhotoSize {
			return nil, fmt.Errorf("%s is larger than 10 MB", fh.Filename)
		}
		f, err := fh.Open()
		if err != nil {
			return nil, err
		}
		buf, err := io.ReadAll(io.LimitReader(f, doorledger.MaxPhotoSize+1))
		f.Close()
		if err != nil {
			return nil, err
		}
		data, ct, err := imagecheck.Photo(buf)
		if doorledger.ErrorCode(err) == doorledger.ETOOMANY {
			return nil, err // the portal is busy decoding other images: not the file's fault
		} else if err != nil {
			return nil, fmt.Errorf("%s: %s", fh.Filename, doorledger.ErrorMessage(err))
		}
		photos = append(photos, doorledger.Photo{ContentType: ct, Data: data})
	}
	return photos, nil
}

func (s *Server) handleConsentCreate(buildings doorledger.BuildingService, consents doorledger.ConsentService, policies doorledger.PolicyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		f := formOf(c, consentFields...)
		req := doorledger.ConsentRequest{
			Device:   doorledger.DeviceDetails{Vendor: f.Value("vendor"), Model: f.Value("model"), Serial: f.Value("serial"), Location: f.Value("location"), Opens: f.Value("opens")},
			InPerson: f.Value("mode") == "in_person",
		}
		for _, raw := range c.Request().Form["signer_id"] { // in the order chosen: the order of signing
			if n, err := strconv.ParseInt(raw, 10, 64); err == nil && n > 0 {
				req.SignerIDs = append(req.SignerIDs, n)
			}
		}
		photos, perr := readPhotos(c)
		paper, problems, paperErr := readPaper(c)
		if perr == nil && paperErr != nil {
			perr = paperErr
		}
		req.Paper = paper
		if doorledger.ErrorCode(perr) == doorledger.ETOOMANY {
			c.Response().Header().Set("Retry-After", "60")
			msg := doorledger.ErrorMessage(perr)
			err = &doorledger.Error{Code: doorledger.ETOOMANY, Message: msg, Fields: map[string]string{"photos": msg}}
		} else if perr == nil && len(problems) > 0 {
			// The paper form's files cannot be used: every other field is
			// checked too, and nothing is written.
			v := doorledger.Validation{}
			if verr := req.Validate(); verr != nil {
				for k, m := range doorledger.ErrorFields(verr) {
					v.Add(k, m)
				}
			}
			paper.Validate(v, s.now())
			err = withProblems(v.Err(), problems)
		} else if perr == nil {
			req.Photos = photos
			var created *doorledger.Consent
			if created, err = consents.RequestConsent(ctx, id, req); err == nil {
				if created.InPerson {
					return s.redirect(c, pathf("/consents/%d/in-person", created.ID), "Request recorded. Now mail the signer their code.")
				}
				if len(created.Signers) > 1 {
					var names []string
					for _, rs := range created.Signers {
						names = append(names, rs.Signer.Name)
					}
					return s.redirect(c, pathf("/consents/%d", created.ID), fmt.Sprintf("Request sent: %s will each get their own one-time signing link at their registered address.", doorledger.JoinAnd(names)))
				}
				return s.redirect(c, pathf("/consents/%d", created.ID), fmt.Sprintf("Request sent: %s will get a one-time signing link at their registered address.", created.Signer.Name))
			}
		} else {
			// Check the other fields too, so every problem shows at once.
			err = req.Validate()
			if err == nil {
				err = &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields."}
			}
			e := err.(*doorledger.Error)
			if e.Fields == nil {
				e.Fields = map[string]string{}
			}
			e.Fields["photos"] = perr.Error() + "."
		}
		if !formError(&f, err) {
			return err
		}
		if f.Errors["photos"] == "" {
			f.Values["photos_note"] = "Please choose the photos again: a browser does not keep files after an error."
		}
		if paper != nil && f.Errors["paper_pdf"] == "" && f.Errors["paper_photos"] == "" {
			f.Values["paper_note"] = "Please choose the paper form's files again: a browser does not keep files after an error."
		}
		v, verr := s.requestView(c, buildings, policies, id, f)
		if verr != nil {
			return verr
		}
		v.PaperSignedBy = paperSignedBy(c)
		return render(c, formStatus(err), views.ConsentRequestPage(s.page(c, "Request consent", "buildings"), v))
	}
}

func (s *Server) handleSubmissions(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := consents.FindMySubmissions(c.Request().Context())
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.SubmissionsPage(s.page(c, "My submissions", "submissions"), list))
	}
}

// consentAndBuilding loads a consent the caller may see, and its building.
func consentAndBuilding(c echo.Context, consents doorledger.ConsentService, buildings doorledger.BuildingService) (*doorledger.Consent, *doorledger.Building, error) {
	id, err := pathID(c, "consent")
	if err != nil {
		return nil, nil, err
	}
	ctx := c.Request().Context()
	con, err := consents.FindConsentByID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	b, err := buildings.FindBuildingByID(ctx, con.BuildingID)
	return con, b, err
}

func (s *Server) handleConsent(consents doorledger.ConsentService, buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		con, b, err := consentAndBuilding(c, consents, buildings)
		if err != nil {
			return err
		}
		return s.renderConsent(c, consents, con, b, http.StatusOK, views.Form{})
	}
}

// renderConsent draws the consent page, with the renewal form's input and
// errors when it was posted with a problem.
func (s *Server) renderConsent(c echo.Context, consents doorledger.ConsentService, con *doorledger.Consent, b *doorledger.Building, status int, renew views.Form) error {
	return s.renderConsentWith(c, consents, con, b, status, renew, views.Form{})
}

// renderConsentWith is renderConsent with the paper form's attach form too.
func (s *Server) renderConsentWith(c echo.Context, consents doorledger.ConsentService, con *doorledger.Consent, b *doorledger.Building, status int, renew, paper views.Form) error {
	ctx := c.Request().Context()
	u := doorledger.UserFromContext(ctx)
	v := views.ConsentView{Consent: con, Building: b, CanManage: doorledger.CanManage(u),
		CanReport: u.Role != doorledger.RoleInstaller, Installer: u.Role == doorledger.RoleInstaller, RenewForm: renew, PaperForm: paper}
	switch {
	case con.Signature != nil:
		v.Terms = con.Signature.Terms
	case con.Terms != "": // a policy request's terms, fixed when it was made
		v.Terms = con.Terms
	default:
		v.Terms = doorledger.ConsentTerms(con, b)
	}
	v.Now = s.now()
	var err error
	if v.Timeline, err = consents.ConsentTimeline(ctx, con.ID); err != nil {
		return err
	}
	if v.Photos, err = consents.ConsentPhotos(ctx, con.ID); err != nil {
		return err
	}
	return render(c, status, views.ConsentPage(s.page(c, fmt.Sprintf("Consent #%d", con.ID), "buildings"), v))
}

// serveImage answers stored image bytes; they were re-encoded at upload, and
// nosniff (set for every response) keeps the browser to the declared type.
func serveImage(c echo.Context, contentType string, data []byte) error {
	c.Response().Header().Set("Cache-Control", "private, max-age=3600")
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'")
	return c.Blob(http.StatusOK, contentType, data)
}

func (s *Server) handleConsentPhoto(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		photoID, err := pathID(c, "photo")
		if err != nil {
			return err
		}
		photos, err := consents.ConsentPhotos(c.Request().Context(), id)
		if err != nil {
			return err
		}
		for _, p := range photos {
			if p.ID == photoID {
				return serveImage(c, p.ContentType, p.Data)
			}
		}
		return doorledger.Errorf(doorledger.ENOTFOUND, "Photo not found.")
	}
}

func (s *Server) handleConsentSignature(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		con, err := consents.FindConsentByID(c.Request().Context(), id)
		if err != nil {
			return err
		}
		// ?signer=ID: that signer's signature of a request with several.
		if signerID, _ := strconv.ParseInt(c.QueryParam("signer"), 10, 64); signerID > 0 {
			if rs := con.RequestSigner(signerID); rs != nil && rs.Signature != nil {
				return serveImage(c, "image/png", rs.Signature.SignaturePNG)
			}
			return doorledger.Errorf(doorledger.ENOTFOUND, "This signer has not signed.")
		}
		if con.Signature == nil {
			return doorledger.Errorf(doorledger.ENOTFOUND, "This consent is not signed.")
		}
		return serveImage(c, "image/png", con.Signature.SignaturePNG)
	}
}

func (s *Server) handleConsentCertificate(consents doorledger.ConsentService, buildings doorledger.BuildingService, papers doorledger.PaperService, witnesses doorledger.WitnessService) echo.HandlerFunc {
	return func(c echo.Context) error {
		con, b, err := consentAndBuilding(c, consents, buildings)
		if err != nil {
			return err
		}
		if err := loadPaperThumbnail(c, papers, con); err != nil {
			return err
		}
		var wh *doorledger.WitnessedHead
		if witnesses != nil {
			if wh, err = witnesses.LatestWitnessed(c.Request().Context(), 0); err != nil {
				return err
			}
		}
		var buf bytes.Buffer
		if err := reports.ConsentCertificateWitnessed(&buf, con, b, s.now().UTC(), wh); err != nil {
			return fmt.Errorf("certificate for consent %d: %w", con.ID, err)
		}
		c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="consent-%d-certificate.pdf"`, con.ID))
		return c.Blob(http.StatusOK, "application/pdf", buf.Bytes())
	}
}

func (s *Server) handleConsentRenew(consents doorledger.ConsentService, buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		f := formOf(c, "signer_id")
		signerID, _ := strconv.ParseInt(f.Value("signer_id"), 10, 64) // 0: the consent's own signer
		renewal, err := consents.RequestRenewal(c.Request().Context(), id, signerID)
		switch {
		case err == nil:
			return s.redirect(c, pathf("/consents/%d", renewal.ID), fmt.Sprintf("Signature requested: %s gets a new one-time link at their registered address.", renewal.Signer.Name))
		case doorledger.ErrorCode(err) == doorledger.ECONFLICT:
			s.flash(c, "error", doorledger.ErrorMessage(err))
			return c.Redirect(http.StatusSeeOther, pathf("/consents/%d", id))
		case formError(&f, err):
			con, b, lerr := consentAndBuilding(c, consents, buildings)
			if lerr != nil {
				return lerr
			}
			return s.renderConsent(c, consents, con, b, formStatus(err), f)
		}
		return err
	}
}
