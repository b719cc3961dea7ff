package web

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/reports"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// The privacy profile: a building's page (managers set it,
// the board reads it) and the tenant privacy notice, public beside the
// device notice.

var disclosureFields = []string{"legal_name", "data_collected", "purpose", "retention", "policy_url"}

// privacyView is the building's privacy page with the disclosure form f for
// the record formID (0: a new one).
func (s *Server) privacyView(c echo.Context, buildings doorledger.BuildingService, privacy doorledger.PrivacyService, residents doorledger.ResidentService,
	id, formID int64, f views.Form) (views.PrivacyView, error) {
	ctx := c.Request().Context()
	b, err := buildings.FindBuildingByID(ctx, id)
	if err != nil {
		return views.PrivacyView{}, err
	}
	st, err := privacy.PrivacyStatus(ctx, id)
	if err != nil {
		return views.PrivacyView{}, err
	}
	v := views.PrivacyView{Building: b, Status: st, CanManage: doorledger.CanManage(doorledger.UserFromContext(ctx)), Form: f, FormID: formID}
	if v.CanManage && st.Profile != doorledger.PrivacyProfileNone {
		if n, err := residents.NoticeSettings(ctx, id); err == nil && n.URL != "" {
			v.NoticeURL = n.URL + doorledger.TenantNoticeSuffix
		}
	}
	if f.Values == nil && formID != 0 {
		for _, d := range st.Disclosures {
			if d.ID == formID {
				v.Form.Values = map[string]string{"legal_name": d.LegalName, "data_collected": d.DataCollected, "purpose": d.Purpose,
					"retention": d.Retention, "policy_url": d.PolicyURL}
			}
		}
		if v.Form.Values == nil {
			v.FormID = 0
		}
	}
	return v, nil
}

func (s *Server) handlePrivacyPage(buildings doorledger.BuildingService, privacy doorledger.PrivacyService, residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		edit, _ := strconv.ParseInt(c.QueryParam("edit"), 10, 64)
		v, err := s.privacyView(c, buildings, privacy, residents, id, max(edit, 0), views.Form{})
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.PrivacyPage(s.page(c, "Privacy profile", "buildings"), v))
	}
}

func (s *Server) handlePrivacyProfile(privacy doorledger.PrivacyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		profile := c.FormValue("profile")
		if err := privacy.SetPrivacyProfile(c.Request().Context(), id, profile); err != nil {
			return err
		}
		msg := "The building follows no privacy profile any more."
		if profile != doorledger.PrivacyProfileNone {
			msg = "The building now follows the " + doorledger.PrivacyProfileName(profile) + "."
		}
		return s.redirect(c, pathf("/buildings/%d/privacy", id), msg)
	}
}

func (s *Server) handleDisclosureSave(buildings doorledger.BuildingService, privacy doorledger.PrivacyService, residents doorledger.ResidentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		var record int64
		if c.Param("disclosure") != "" {
			if record, err = pathID(c, "disclosure"); err != nil {
				return err
			}
		}
		f := formOf(c, disclosureFields...)
		in := doorledger.VendorDisclosureInput{LegalName: f.Value("legal_name"), DataCollected: f.Value("data_collected"),
			Purpose: f.Value("purpose"), Retention: f.Value("retention"), PolicyURL: f.Value("policy_url")}
		d, err := privacy.SaveVendorDisclosure(c.Request().Context(), id, record, in)
		if err == nil {
			return s.redirect(c, pathf("/buildings/%d/privacy", id), "Vendor disclosure record #"+strconv.FormatInt(d.ID, 10)+" saved.")
		}
		if !formError(&f, err) {
			return err
		}
		v, verr := s.privacyView(c, buildings, privacy, residents, id, record, f)
		if verr != nil {
			return verr
		}
		return render(c, formStatus(err), views.PrivacyPage(s.page(c, "Privacy profile", "buildings"), v))
	}
}

func (s *Server) handleDeviceDisclosure(privacy doorledger.PrivacyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		device, err := pathID(c, "device")
		if err != nil {
			return err
		}
		record, err := strconv.ParseInt(strings.TrimSpace(c.FormValue("disclosure")), 10, 64)
		if err != nil {
			record = -1 // the service refuses it, once it knows the caller may see the building
		}
		if err := privacy.SetDeviceDisclosure(c.Request().Context(), id, device, record); err != nil {
			if doorledger.ErrorCode(err) == doorledger.ECONFLICT {
				s.flash(c, "error", doorledger.ErrorMessage(err))
				return c.Redirect(http.StatusSeeOther, pathf("/buildings/%d/privacy", id))
			}
			return err
		}
		return s.redirect(c, pathf("/buildings/%d/privacy", id), "Device #"+strconv.FormatInt(device, 10)+"'s vendor disclosure record saved.")
	}
}

func (s *Server) handleTenantNotice(privacy doorledger.PrivacyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		n, err := privacy.TenantNotice(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		return renderNotice(c, http.StatusOK, views.TenantNoticePage(n))
	}
}

func (s *Server) handleTenantNoticePDF(privacy doorledger.PrivacyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		n, err := privacy.TenantNotice(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := reports.TenantPrivacyNoticePDF(&buf, n, s.now()); err != nil {
			return err
		}
		h := c.Response().Header()
		h.Set("Cache-Control", noticeMaxAge)
		h.Set("Content-Disposition", `inline; filename="tenant-privacy-notice.pdf"`)
		return c.Blob(http.StatusOK, "application/pdf", buf.Bytes())
	}
}
