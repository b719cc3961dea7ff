package web

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/pdfcheck"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// Paper forms: the installer's request carries one; a manager
// attaches one on a signer's behalf; the signer sees it on their signing page
// and confirms it with their signature or answers "I did not sign this form".

// paperBodyLimit bounds a paper form's upload: a PDF or the photos, and the
// text fields.
const paperBodyLimit = doorledger.MaxPaperPhotos*doorledger.MaxPhotoSize + 1<<20

var paperFields = []string{"paper_date"}

// readPaper reads a paper form from the multipart form: nil when none was
// given. Problems with its files are returned as field messages (problems)
// so that the rest of the form is checked and kept; err is for what is not
// the uploader's to fix (ETOOMANY when the image budget is busy).
func readPaper(c echo.Context) (in *doorledger.PaperFormInput, problems map[string]string, err error) {
	problems = map[string]string{}
	r := c.Request()
	var pdfs, photos []*multipart.FileHeader
	if r.MultipartForm != nil {
		pdfs, photos = nonEmpty(r.MultipartForm.File["paper_pdf"]), nonEmpty(r.MultipartForm.File["paper_photos"])
	}
	in = &doorledger.PaperFormInput{DateWritten: c.FormValue("paper_date")}
	for _, raw := range r.Form["paper_signed_by"] {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil && n > 0 {
			in.SignedByIDs = append(in.SignedByIDs, n)
		}
	}
	if len(pdfs) == 0 && len(photos) == 0 && len(in.SignedByIDs) == 0 && in.DateWritten == "" {
		return nil, problems, nil
	}
	switch {
	case len(pdfs) > 0 && len(photos) > 0:
		problems["paper_pdf"] = "Attach the form either as one PDF or as photos, not both."
	case len(pdfs) > 1:
		problems["paper_pdf"] = "Attach one PDF of the form."
	case len(pdfs) == 1:
		in.Kind = doorledger.PaperPDF
		fh := pdfs[0]
		if fh.Size > pdfcheck.MaxSize {
			problems["paper_pdf"] = fmt.Sprintf("%s is %s, larger than the %d MB a scanned form may be. Scan it again at a lower resolution, or photograph it.", fh.Filename, byteSize(fh.Size), pdfcheck.MaxSize>>20)
			break
		}
		data, err := readFileHeader(fh, pdfcheck.MaxSize)
		if err != nil {
			return nil, nil, err
		}
		facts, err := pdfcheck.Check(data)
		if err != nil {
			problems["paper_pdf"] = fh.Filename + ": " + doorledger.ErrorMessage(err)
			break
		}
		in.Files = []doorledger.PaperFile{{ContentType: "application/pdf", Data: data, Pages: facts.Pages,
			PageSize: facts.PageSize, Producer: facts.Producer, Created: facts.Created, Warnings: facts.Warnings()}}
	case len(photos) > doorledger.MaxPaperPhotos:
		problems["paper_photos"] = fmt.Sprintf("Attach at most %d photos of the form.", doorledger.MaxPaperPhotos)
	case len(photos) > 0:
		in.Kind = doorledger.PaperPhotos
		for _, fh := range photos {
			if fh.Size > doorledger.MaxPhotoSize {
				problems["paper_photos"] = fmt.Sprintf("%s is larger than 10 MB.", fh.Filename)
				break
			}
			buf, err := readFileHeader(fh, doorledger.MaxPhotoSize)
			if err != nil {
				return nil, nil, err
			}
			data, ct, err := imagecheck.Photo(buf)
			if doorledger.ErrorCode(err) == doorledger.ETOOMANY {
				return nil, nil, err
			} else if err != nil {
				problems["paper_photos"] = fh.Filename + ": " + doorledger.ErrorMessage(err)
				break
			}
			in.Files = append(in.Files, doorledger.PaperFile{ContentType: ct, Data: data, Pages: 1})
		}
	default:
		problems["paper_pdf"] = "Attach the signed form, as one PDF or as photos."
	}
	return in, problems, nil
}

func nonEmpty(files []*multipart.FileHeader) []*multipart.FileHeader {
	var out []*multipart.FileHeader
	for _, fh := range files {
		if fh.Size > 0 || fh.Filename != "" {
			out = append(out, fh)
		}
	}
	return out
}

func readFileHeader(fh *multipart.FileHeader, limit int64) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// paperSignedBy is who signed the paper form, as posted, for re-rendering.
func paperSignedBy(c echo.Context) map[int64]bool {
	out := map[int64]bool{}
	for _, raw := range c.Request().Form["paper_signed_by"] {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			out[n] = true
		}
	}
	return out
}

// withProblems adds the upload problems to err (a validation error, or
// nil), so that every problem shows at once beside its field.
func withProblems(err error, problems map[string]string) error {
	if len(problems) == 0 {
		return err
	}
	fields := map[string]string{}
	if doorledger.ErrorCode(err) == doorledger.EINVALID {
		for k, m := range doorledger.ErrorFields(err) {
			fields[k] = m
		}
	} else if err != nil {
		return err
	}
	for k, m := range problems {
		fields[k] = m
	}
	return &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields.", Fields: fields}
}

// servePaperFile answers a paper form's file: a photo inline (re-encoded at
// upload), a PDF only as an attachment, never rendered by the browser here.
func servePaperFile(c echo.Context, f *doorledger.PaperFile) error {
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if f.PDF() {
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="paper-form-%d.pdf"`, f.ID))
		h.Set("Cache-Control", "private, no-store")
		return c.Blob(http.StatusOK, "application/pdf", f.Data)
	}
	return serveImage(c, f.ContentType, f.Data)
}

func (s *Server) handlePaperFile(papers doorledger.PaperService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		fileID, err := pathID(c, "file")
		if err != nil {
			return err
		}
		f, err := papers.PaperFile(c.Request().Context(), id, fileID)
		if err != nil {
			return err
		}
		return servePaperFile(c, f)
	}
}

func (s *Server) handleSigningPaperFile(papers doorledger.PaperService) echo.HandlerFunc {
	return func(c echo.Context) error {
		fileID, err := pathID(c, "file")
		if err != nil {
			return err
		}
		f, err := papers.SigningPaperFile(c.Request().Context(), c.Param("token"), fileID)
		if err != nil {
			return err
		}
		return servePaperFile(c, f)
	}
}

func (s *Server) handlePaperDispute(papers doorledger.PaperService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ended, err := papers.DisputePaperForm(c.Request().Context(), c.Param("token"), c.FormValue("reason"))
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("Thank you. Consent request #%d is refused: nothing is enabled, the installer's submission is marked disputed, and the building's managers and board have been alerted.", ended.ID)
		if ended.Status == doorledger.ConsentDisputed {
			msg = fmt.Sprintf("Thank you. Consent #%d is marked disputed, its device is being disabled now, the installer's submission is marked disputed, and the building's managers and board have been alerted.", ended.ID)
		}
		return render(c, http.StatusOK, views.MessagePage(s.page(c, "Reported", ""), "You did not sign this form", msg))
	}
}

func (s *Server) handlePaperAttach(consents doorledger.ConsentService, buildings doorledger.BuildingService, papers doorledger.PaperService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		f := formOf(c, paperFields...)
		in, problems, err := readPaper(c)
		if err != nil {
			return err
		}
		if in == nil {
			in = &doorledger.PaperFormInput{}
			problems["paper_pdf"] = "Attach the signed form, as one PDF or as photos."
		}
		if len(problems) == 0 {
			if _, err = papers.AttachPaperForm(c.Request().Context(), id, *in); err == nil {
				return s.redirect(c, pathf("/consents/%d", id), "Paper form attached: each signer it names is mailed to confirm it.")
			}
		} else {
			v := doorledger.Validation{}
			in.Validate(v, s.now())
			err = withProblems(v.Err(), problems)
		}
		if !formError(&f, err) {
			return err
		}
		if f.Errors["paper_pdf"] == "" && f.Errors["paper_photos"] == "" {
			f.Values["paper_note"] = "Please choose the files again: a browser does not keep files after an error."
		}
		con, b, lerr := consentAndBuilding(c, consents, buildings)
		if lerr != nil {
			return lerr
		}
		return s.renderConsentWith(c, consents, con, b, formStatus(err), views.Form{}, f)
	}
}

// loadPaperThumbnail loads the bytes of the first photo of a consent's paper
// form, which the certificate draws as a thumbnail.
func loadPaperThumbnail(c echo.Context, papers doorledger.PaperService, con *doorledger.Consent) error {
	if con.Paper == nil || papers == nil {
		return nil
	}
	for i, f := range con.Paper.Files {
		if !f.PDF() {
			pf, err := papers.PaperFile(c.Request().Context(), con.ID, f.ID)
			if err != nil {
				return err
			}
			con.Paper.Files[i].Data = pf.Data
			return nil
		}
	}
	return nil
}
