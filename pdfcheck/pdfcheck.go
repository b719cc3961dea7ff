// Package pdfcheck validates an uploaded PDF by its bytes, without rendering
// it or interpreting anything it says to do.
//
// A paper form scanned to PDF is evidence: it is stored as uploaded and served
// only as a download, so the portal needs to know no more about it than that
// it is a PDF at all, how many pages and objects it has, what size its pages
// are, and whether it carries active content (JavaScript, embedded files,
// launch actions) that a reader should be warned of. Check reads exactly that
// and nothing else, with one linear pass of a small tokenizer:
//
//   - the header "%PDF-1.x" or "%PDF-2.0" at the first byte;
//   - the trailer: "%%EOF" in the last KB, and a "startxref" offset inside
//     the file that points at a cross-reference table ("xref") or stream
//     ("N G obj"), so a truncated file is refused;
//   - objects: every "N G obj" and, inside object streams (decompressed with
//     a byte budget, so a compression bomb is refused, not inflated), their
//     /N count; the trailer's /Size too. More than MaxObjects is refused;
//   - pages: the largest /Count of a /Type /Pages node (the root's is the
//     document's page count) and the /Type /Page leaves; zero pages or more
//     than MaxPages is refused;
//   - the first page's /MediaBox, the document's /Producer and creation date
//     when they are plain strings;
//   - names marking active content, with their #xx escapes decoded:
//     /JavaScript and /JS, /EmbeddedFile(s) and /FileAttachment, /Launch;
//     and /Encrypt. These are findings, not refusals: the form is evidence.
//
// Nothing in a PDF is followed: no reference is resolved, no content stream
// is decoded, no font or image is read. Every refusal is a doorledger.EINVALID
// error whose message can be shown beside the upload field.
//
// The tokenizer is fuzzed (FuzzCheck); a longer run is
// go test -run '^$' -fuzz FuzzCheck -fuzztime 10m ./pdfcheck
package pdfcheck

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/doorledger/doorledger"
)

// Limits of an accepted PDF.
const (
	MaxSize    = 20 << 20 // bytes of the file
	MaxObjects = 5000     // indirect objects, counted or declared
	MaxPages   = 30       // pages of a paper form
	// MaxInflated bounds the bytes decompressed from the object streams of
	// one file: a scanned form's objects take a few KB.
	MaxInflated = 8 << 20
	maxDepth    = 64 // nesting of dictionaries and arrays
)

// Facts are what Check learned of an accepted PDF.
type Facts struct {
	Version  string // "1.7"
	Pages    int
	Objects  int
	Size     int64
	PageSize string // of the first page, e.g. "A4 portrait (210 × 297 mm)"; "" when not stated plainly
	Producer string // the /Producer string, when a plain string
	Created  string // the /CreationDate string, e.g. "D:20261201093000Z", when a plain string
	// Active content: stored and reported, never acted on.
	JavaScript    bool
	EmbeddedFiles bool
	Launch        bool
	Encrypted     bool
}

// Warnings says in words what a reader of the file should be warned of.
func (f *Facts) Warnings() []string {
	var w []string
	if f.JavaScript {
		w = append(w, "contains JavaScript")
	}
	if f.EmbeddedFiles {
		w = append(w, "contains embedded files")
	}
	if f.Launch {
		w = append(w, "contains a launch action")
	}
	if f.Encrypted {
		w = append(w, "is encrypted")
	}
	return w
}

func invalid(format string, args ...any) error {
	return doorledger.Errorf(doorledger.EINVALID, format, args...)
}

// Check validates b as a PDF and returns its facts, or an EINVALID error
// saying what is wrong with it.
func Check(b []byte) (*Facts, error) {
	switch {
	case len(b) == 0:
		return nil, invalid("The file is empty.")
	case len(b) > MaxSize:
		return nil, invalid("The PDF is larger than %d MB.", MaxSize>>20)
	}
	version, ok := header(b)
	if !ok {
		return nil, invalid("This file is not a PDF (it does not start with a PDF header). Upload the scanned form as a PDF, or photos of it as JPEG or PNG.")
	}
	if err := trailer(b); err != nil {
		return nil, err
	}
	s := &scan{inflateLeft: MaxInflated}
	if err := s.run(b, false); err != nil {
		return nil, err
	}
	f := &Facts{Version: version, Size: int64(len(b)), Producer: s.producer, Created: s.created,
		JavaScript: s.js, EmbeddedFiles: s.embedded, Launch: s.launch, Encrypted: s.encrypted}
	f.Objects = max(s.objects, s.size-1)
	f.Pages = max(s.rootCount, s.leaves)
	if s.mediaBox != nil {
		f.PageSize = describeBox(s.mediaBox)
	} else if s.rootBox != nil {
		f.PageSize = describeBox(s.rootBox)
	}
	switch {
	case f.Objects > MaxObjects:
		return nil, invalid("The PDF has %d objects, more than the %d a scanned form needs. Save it again as a plain scan, or photograph the form.", f.Objects, MaxObjects)
	case f.Pages > MaxPages:
		return nil, invalid("The PDF has %d pages: a paper form of at most %d pages is expected.", f.Pages, MaxPages)
	case f.Pages == 0 && f.Encrypted:
		return nil, invalid("The PDF is encrypted, so its pages cannot be counted. Save it again without a password, or photograph the form.")
	case f.Pages == 0:
		return nil, invalid("The PDF has no pages that could be counted. Save it again as a plain scan, or photograph the form.")
	}
	return f, nil
}

// header returns the version of the "%PDF-x.y" header at the first byte.
func header(b []byte) (string, bool) {
	if !bytes.HasPrefix(b, []byte("%PDF-")) || len(b) < 8 {
		return "", false
	}
	v := string(b[5:8])
	if v[0] < '1' || v[0] > '2' || v[1] != '.' || v[2] < '0' || v[2] > '9' {
		return "", false
	}
	return v, true
}

// trailer checks the end of the file: %%EOF in the last KB, preceded by
// startxref and an offset within the file at which a cross-reference table or
// stream begins.
func trailer(b []byte) error {
	truncated := invalid("The PDF is incomplete (its end is missing): the upload may have been cut off. Save or scan it again.")
	tail := b[max(0, len(b)-1024):]
	eof := bytes.LastIndex(tail, []byte("%%EOF"))
	if eof < 0 {
		return truncated
	}
	tail = tail[:eof]
	sx := bytes.LastIndex(tail, []byte("startxref"))
	if sx < 0 {
		return truncated
	}
	fields := bytes.Fields(tail[sx+len("startxref"):])
	if len(fields) != 1 {
		return truncated
	}
	off, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil || off <= 0 || off >= int64(len(b)) {
		return invalid("The PDF's cross-reference offset points outside the file: it is damaged.")
	}
	at := bytes.TrimLeft(b[off:], " \t\r\n\f\x00")
	if bytes.HasPrefix(at, []byte("xref")) {
		return nil
	}
	// An xref stream: "N G obj".
	l := &lexer{b: at}
	t1, t2, t3 := l.next(), l.next(), l.next()
	if t1.kind == tInt && t2.kind == tInt && t3.kind == tKeyword && string(t3.text) == "obj" {
		return nil
	}
	return invalid("The PDF's cross-reference offset does not point at its cross-reference table: it is damaged.")
}

// describeBox names a media box's size, in millimetres, and the paper it is.
func describeBox(box []float64) string {
	w, h := box[2]-box[0], box[3]-box[1]
	if w < 0 {
		w = -w
	}
	if h < 0 {
		h = -h
	}
	if w < 1 || h < 1 || w > 14400 || h > 14400 {
		return ""
	}
	mm := func(pt float64) int { return int(pt*25.4/72 + 0.5) }
	orient := "portrait"
	if w > h {
		orient = "landscape"
	}
	short, long := min(mm(w), mm(h)), max(mm(w), mm(h))
	name := ""
	near := func(a, b int) bool { return a-b <= 2 && b-a <= 2 }
	switch {
	case near(short, 210) && near(long, 297):
		name = "A4 "
	case near(short, 216) && near(long, 279):
		name = "Letter "
	case near(short, 216) && near(long, 356):
		name = "Legal "
	case near(short, 148) && near(long, 210):
		name = "A5 "
	}
	return fmt.Sprintf("%s%s (%d × %d mm)", name, orient, mm(w), mm(h))
}

// scan walks the tokens of a file (or of an object stream's contents).
type scan struct {
	objects, size        int
	rootCount, leaves    int
	mediaBox, rootBox    []float64 // the first page's own, the root page tree's
	producer, created    string
	js, embedded, launch bool
	encrypted            bool
	inflateLeft          int
}

// dict is a dictionary being read: the simple values of the keys that matter.
type dict struct {
	key               string // the key whose value comes next ("" between pairs)
	typ, filter       string
	count, n, length  int
	size              int
	hasCount          bool
	mediaBox          []float64
	producer, created string
}

// frame is an open dictionary (d) or array.
type frame struct {
	d      *dict
	arr    []float64
	arrOK  bool  // every element so far a number
	parent *dict // the dictionary an array is the value of
	key    string
}

func (s *scan) run(b []byte, inObjStm bool) error {
	l := &lexer{b: b}
	var stack []*frame
	var last *dict // the dictionary closed last: a stream's, when "stream" follows
	var prev [2]token
	damaged := invalid("The PDF is damaged and cannot be checked.")
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	for {
		t := l.next()
		value := true // whether t is a value of the enclosing dictionary or array
		switch t.kind {
		case tEOF:
			return nil
		case tBad:
			return damaged
		case tName:
			s.noteName(decodeName(t.text))
			if f := top(); f != nil && f.d != nil && f.d.key == "" {
				f.d.key = decodeName(t.text)
				value = false
			}
		case tDictOpen, tArrayOpen:
			if len(stack) >= maxDepth {
				return invalid("The PDF nests its objects too deeply to be checked.")
			}
			f := &frame{}
			if t.kind == tDictOpen {
				f.d = &dict{}
			} else {
				f.arrOK = true
				if p := top(); p != nil && p.d != nil {
					f.parent, f.key = p.d, p.d.key
				}
			}
			stack = append(stack, f)
			value = false
		case tDictClose, tArrayClose:
			f := top()
			if f == nil || (t.kind == tDictClose) != (f.d != nil) {
				return damaged
			}
			stack = stack[:len(stack)-1]
			if f.d != nil {
				s.closeDict(f.d)
				last = f.d
			} else if f.parent != nil && f.key == "MediaBox" && f.arrOK && len(f.arr) == 4 {
				f.parent.mediaBox = f.arr
			}
			t = token{kind: tOther} // the closed container is the value
		case tKeyword:
			switch string(t.text) {
			case "obj":
				if prev[0].kind == tInt && prev[1].kind == tInt {
					s.objects++
				}
				stack, last, value = stack[:0], nil, false
			case "endobj", "trailer", "xref", "startxref":
				stack, last, value = stack[:0], nil, false
			case "stream":
				if inObjStm || last == nil || len(stack) > 0 {
					return damaged
				}
				data, ok := l.stream(last.length)
				if !ok {
					return damaged
				}
				if last.typ == "ObjStm" {
					if err := s.objStm(data, last); err != nil {
						return err
					}
				}
				last, value = nil, false
			}
		}
		if f := top(); value && f != nil {
			if f.d != nil {
				f.d.set(t)
			} else if n, ok := t.number(); ok {
				f.arr = append(f.arr, n)
			} else {
				f.arrOK = false
			}
		}
		prev[0], prev[1] = prev[1], t
	}
}

// set records the value t of the dictionary's current key, when it is one
// that matters and a plain value; a reference ("5 0 R") is not followed.
func (d *dict) set(t token) {
	key := d.key
	if key == "" {
		return // a stray value: not a pair
	}
	d.key = ""
	switch key {
	case "Type":
		if t.kind == tName {
			d.typ = decodeName(t.text)
		}
	case "Filter":
		if t.kind == tName {
			d.filter = decodeName(t.text)
		}
	case "Count", "N", "Length", "Size":
		n, ok := t.int()
		if !ok {
			if key == "Length" {
				d.length = -1 // indirect: the stream's end is searched for
			}
			return
		}
		switch key {
		case "Count":
			d.count, d.hasCount = n, true
		case "N":
			d.n = n
		case "Length":
			d.length = n
		case "Size":
			d.size = n
		}
	case "Producer":
		if t.kind == tString {
			d.producer = plainString(t.text)
		}
	case "CreationDate":
		if t.kind == tString {
			d.created = plainString(t.text)
		}
	}
}

// A reference's numbers arrive as values too ("5 0 R"): only the first is
// taken by set, and the key is then cleared, so the rest fall through as
// stray values.

func (s *scan) closeDict(d *dict) {
	switch d.typ {
	case "Pages":
		if d.hasCount && d.count > s.rootCount {
			s.rootCount = d.count
			if d.mediaBox != nil {
				s.rootBox = d.mediaBox // inherited by pages that state none
			}
		}
	case "Page":
		s.leaves++
		if d.mediaBox != nil && s.mediaBox == nil {
			s.mediaBox = d.mediaBox
		}
	}
	s.size = max(s.size, d.size)
	if d.producer != "" && s.producer == "" {
		s.producer = d.producer
	}
	if d.created != "" && s.created == "" {
		s.created = d.created
	}
}

// noteName records the names that mark active content.
func (s *scan) noteName(name string) {
	switch name {
	case "JavaScript", "JS":
		s.js = true
	case "EmbeddedFile", "EF", "FileAttachment":
		// An embedded file stream, a file specification's embedded file, an
		// attachment annotation. (The /EmbeddedFiles name tree alone, which
		// some writers leave empty, embeds nothing.)
		s.embedded = true
	case "Launch":
		s.launch = true
	case "Encrypt":
		s.encrypted = true
	}
}

// objStm reads an object stream: its /N objects count, and its contents (the
// objects, without "obj" keywords) are scanned for the same facts. Only a
// plain /FlateDecode stream is decompressed, within the file's budget.
func (s *scan) objStm(data []byte, d *dict) error {
	if d.n < 0 || d.n > MaxObjects {
		return invalid("The PDF has more than %d objects, more than a scanned form needs.", MaxObjects)
	}
	s.objects += d.n
	var plain []byte
	switch d.filter {
	case "":
		plain = data
	case "FlateDecode":
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return invalid("The PDF is damaged: a compressed part cannot be read.")
		}
		plain, err = io.ReadAll(io.LimitReader(zr, int64(s.inflateLeft)+1))
		if err != nil && err != io.ErrUnexpectedEOF {
			return invalid("The PDF is damaged: a compressed part cannot be read.")
		}
		if len(plain) > s.inflateLeft {
			return invalid("The PDF's compressed parts expand to more than %d MB: it is not a plain scanned form.", MaxInflated>>20)
		}
		s.inflateLeft -= len(plain)
	default:
		return nil // another filter: its objects are counted, not read
	}
	return s.run(plain, true)
}

// plainString keeps the printable text of a literal string, at most 100
// characters; escapes and other bytes are dropped.
func plainString(raw []byte) string {
	var sb strings.Builder
	for _, c := range raw {
		if c >= 0x20 && c < 0x7f && c != '\\' && sb.Len() < 100 {
			sb.WriteByte(c)
		}
	}
	return strings.TrimSpace(sb.String())
}

// decodeName decodes a name's #xx escapes (a name token without its slash).
func decodeName(raw []byte) string {
	if bytes.IndexByte(raw, '#') < 0 {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '#' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
			out = append(out, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 2
			continue
		}
		out = append(out, raw[i])
	}
	return string(out)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
