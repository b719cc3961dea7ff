// Package pdftest builds PDFs for tests: well-formed ones of a few pages and
// the hostile ones the paper-form upload must handle (JavaScript, embedded
// files, too many objects or pages, truncated, compression bombs). Each is
// written object by object with a correct cross-reference table, so that what
// makes it hostile is the only thing wrong with it.
package pdftest

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
)

// Build writes a PDF of the given objects (numbered from 1, without their
// "N 0 obj" wrappers), a cross-reference table and a trailer whose /Root is
// object 1, with extra trailer entries.
func Build(objects []string, trailerExtra string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R %s >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, trailerExtra, xref)
	return b.Bytes()
}

// Pages returns a PDF of n blank A4 pages (a catalog, a page tree, n pages).
func Pages(n int) []byte {
	objs := []string{"<< /Type /Catalog /Pages 2 0 R >>", ""}
	var kids []string
	for i := 0; i < n; i++ {
		kids = append(kids, fmt.Sprintf("%d 0 R", i+3))
		objs = append(objs, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] >>")
	}
	objs[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n)
	return Build(objs, "/Info << /Producer (pdftest scanner) /CreationDate (D:20261201093000Z) >>")
}

// JavaScript returns a one-page PDF whose opening runs JavaScript.
func JavaScript() []byte {
	return Build([]string{
		"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		"<< /Type /Action /S /JavaScript /JS (app.alert\\('form'\\);) >>",
	}, "")
}

// EmbeddedFile returns a one-page PDF carrying an embedded file, its name
// written with #xx escapes as an evasive file would.
func EmbeddedFile() []byte {
	return Build([]string{
		"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		"<< /Names [(x.exe) 5 0 R] >>",
		"<< /Type /Filespec /F (x.exe) /E#46 << /F 6 0 R >> >>",
		"<< /Type /Embedded#46ile /Length 2 >>\nstream\nMZ\nendstream",
	}, "")
}

// ManyObjects returns a one-page PDF with n objects in all.
func ManyObjects(n int) []byte {
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
	}
	for len(objs) < n {
		objs = append(objs, "null")
	}
	return Build(objs, "")
}

// ObjectStream returns a one-page PDF whose page tree lies in a compressed
// object stream holding n objects, the way PDF 1.5 writers store it.
func ObjectStream(n int) []byte {
	inner := []string{
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
	}
	for len(inner) < n {
		inner = append(inner, "null")
	}
	var head, body bytes.Buffer
	for i, o := range inner {
		fmt.Fprintf(&head, "%d %d ", i+2, body.Len())
		body.WriteString(o + "\n")
	}
	plain := append(head.Bytes(), body.Bytes()...)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	return Build([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream", len(inner), head.Len(), z.Len(), z.Bytes()),
	}, "")
}

// Bomb returns a PDF whose object stream inflates to more than size bytes.
func Bomb(size int) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	chunk := bytes.Repeat([]byte(" "), 1<<16)
	for n := 0; n < size; n += len(chunk) {
		zw.Write(chunk)
	}
	zw.Close()
	return Build([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
		fmt.Sprintf("<< /Type /ObjStm /N 1 /First 0 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream", z.Len(), z.Bytes()),
		"<< /Type /Page /Parent 2 0 R >>",
	}, "")
}

// Truncated returns the first half of a valid PDF.
func Truncated() []byte {
	p := Pages(2)
	return p[:len(p)/2]
}
