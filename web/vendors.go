package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// The admin page of vendor integrations: create, rotate a key, remove the
// previous key, retire, and put devices under an integration. A new key is
// rendered in the response that made it, never stored in clear or flashed.

// vendorsView builds the page's model for the signed-in admin.
func vendorsView(c echo.Context, vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) (views.VendorsView, error) {
	ctx := c.Request().Context()
	v := views.VendorsView{APIBase: c.Scheme() + "://" + c.Request().Host}
	var err error
	if v.Integrations, err = vendors.FindVendorIntegrations(ctx); err != nil {
		return v, err
	}
	if v.Buildings, err = buildings.FindBuildings(ctx); err != nil {
		return v, err
	}
	all, err := devices.FindDevices(ctx, doorledger.DeviceFilter{})
	if err != nil {
		return v, err
	}
	for _, d := range all {
		if !d.Retired {
			v.Devices = append(v.Devices, d)
		}
	}
	return v, nil
}

func (s *Server) renderVendors(c echo.Context, status int, v views.VendorsView) error {
	return render(c, status, views.VendorsPage(s.page(c, "Vendor integrations", "vendors"), v))
}

func (s *Server) handleVendors(vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := vendorsView(c, vendors, buildings, devices)
		if err != nil {
			return err
		}
		return s.renderVendors(c, http.StatusOK, v)
	}
}

func (s *Server) handleVendorCreate(vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := formOf(c, "name", "webhook_url")
		form, err := c.FormParams()
		if err != nil {
			return err
		}
		in := doorledger.VendorIntegrationInput{Name: f.Value("name"), WebhookURL: f.Value("webhook_url")}
		for _, b := range form["building"] {
			id, err := strconv.ParseInt(b, 10, 64)
			if err != nil || id <= 0 {
				continue
			}
			in.BuildingIDs = append(in.BuildingIDs, id)
		}
		f.Values["building"] = strings.Join(form["building"], ",")
		vi, key, err := vendors.CreateVendorIntegration(c.Request().Context(), in)
		v, verr := vendorsView(c, vendors, buildings, devices)
		if verr != nil {
			return verr
		}
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			v.Form = f
			return s.renderVendors(c, formStatus(err), v)
		}
		v.NewKey, v.NewKeyFor = key, findIntegration(v.Integrations, vi.ID)
		return s.renderVendors(c, http.StatusOK, v)
	}
}

func findIntegration(list []*doorledger.VendorIntegration, id int64) *doorledger.VendorIntegration {
	for _, vi := range list {
		if vi.ID == id {
			return vi
		}
	}
	return nil
}

// vendorActionError re-renders the page with a refused action's message
// (EINVALID, ECONFLICT), or hands any other error to the error handler.
func (s *Server) vendorActionError(c echo.Context, err error, vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) error {
	switch doorledger.ErrorCode(err) {
	case doorledger.EINVALID, doorledger.ECONFLICT:
	default:
		return err
	}
	v, verr := vendorsView(c, vendors, buildings, devices)
	if verr != nil {
		return verr
	}
	v.Error = doorledger.ErrorMessage(err)
	return s.renderVendors(c, formStatus(err), v)
}

func (s *Server) handleVendorRotate(vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "vendor")
		if err != nil {
			return err
		}
		key, err := vendors.RotateVendorKey(c.Request().Context(), id)
		if err != nil {
			return s.vendorActionError(c, err, vendors, buildings, devices)
		}
		v, err := vendorsView(c, vendors, buildings, devices)
		if err != nil {
			return err
		}
		v.NewKey, v.NewKeyFor = key, findIntegration(v.Integrations, id)
		return s.renderVendors(c, http.StatusOK, v)
	}
}

func (s *Server) handleVendorRemovePreviousKey(vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "vendor")
		if err != nil {
			return err
		}
		if err := vendors.RemovePreviousVendorKey(c.Request().Context(), id); err != nil {
			return s.vendorActionError(c, err, vendors, buildings, devices)
		}
		return s.redirect(c, fmt.Sprintf("/vendors#vendor-%d", id), "The previous key no longer works.")
	}
}

func (s *Server) handleVendorRetire(vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "vendor")
		if err != nil {
			return err
		}
		if err := vendors.RetireVendorIntegration(c.Request().Context(), id); err != nil {
			return s.vendorActionError(c, err, vendors, buildings, devices)
		}
		return s.redirect(c, fmt.Sprintf("/vendors#vendor-%d", id), "Integration retired: its keys no longer work. Move its devices to another integration or back to MQTT.")
	}
}

func (s *Server) handleDeviceVendor(vendors doorledger.VendorService, buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "device")
		if err != nil {
			return err
		}
		vendorID, err := strconv.ParseInt(c.FormValue("vendor"), 10, 64)
		if err != nil || vendorID < 0 {
			return s.vendorActionError(c, doorledger.Errorf(doorledger.EINVALID, "Choose an integration, or none."), vendors, buildings, devices)
		}
		if err := vendors.SetDeviceVendor(c.Request().Context(), id, vendorID); err != nil {
			return s.vendorActionError(c, err, vendors, buildings, devices)
		}
		msg := fmt.Sprintf("Device %d is reached over MQTT.", id)
		if vendorID != 0 {
			msg = fmt.Sprintf("Device %d is now controlled through its vendor integration; its desired state is being sent there.", id)
		}
		return s.redirect(c, fmt.Sprintf("/vendors#device-%d", id), msg)
	}
}
