package reports

import (
	"io"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/go-pdf/fpdf"
)

// TenantPrivacyNoticePDF prints the building's tenant privacy notice (the
// privacy profile): the same sections, in the same words, as its
// public page (doorledger.TenantPrivacyNotice.Sections). It names no person.
func TenantPrivacyNoticePDF(w io.Writer, n *doorledger.TenantPrivacyNotice, createdAt time.Time) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes(fontFamily, "", dejaVuSans)
	pdf.AddUTF8FontFromBytes(fontFamily, "B", dejaVuSansBold)
	pdf.SetCatalogSort(true)
	pdf.SetCreationDate(createdAt.UTC())
	pdf.SetModificationDate(createdAt.UTC())
	pdf.SetTitle(oneLine("Tenant privacy notice "+n.BuildingName), true)
	pdf.SetCreator("Doorledger", true)
	pdf.SetLang("en")
	const margin = 18.0
	pdf.SetMargins(margin, margin, margin)
	pdf.SetAutoPageBreak(true, margin)
	pdf.AddPage()
	w0, _ := pdf.GetPageSize()
	width := w0 - 2*margin

	pdf.SetFont(fontFamily, "B", 20)
	pdf.MultiCell(width, 9, "Tenant privacy notice", "", "L", false)
	pdf.SetFont(fontFamily, "B", 14)
	pdf.MultiCell(width, 7, oneLine(n.BuildingName), "", "L", false)
	pdf.SetFont(fontFamily, "", 10)
	pdf.MultiCell(width, 5, oneLine("Under the "+doorledger.PrivacyProfileName(n.Profile)+
		". About the smart access devices that can open this building's doors for deliveries."), "", "L", false)
	for _, s := range n.Sections() {
		pdf.Ln(4)
		pdf.SetFont(fontFamily, "B", 13)
		pdf.MultiCell(width, 6.5, s.Title, "", "L", false)
		pdf.SetFont(fontFamily, "", 10.5)
		for _, para := range s.Paras {
			pdf.MultiCell(width, 5.2, multiLine(para), "", "L", false)
			pdf.Ln(1.2)
		}
	}
	pdf.Ln(4)
	pdf.SetFont(fontFamily, "", 8)
	pdf.SetTextColor(100, 100, 100)
	pdf.MultiCell(width, 4, "Printed "+createdAt.UTC().Format("2006-01-02")+" from Doorledger, from the building's vendor disclosure records.", "", "L", false)
	if err := pdf.Error(); err != nil {
		return err
	}
	return pdf.Output(w)
}
