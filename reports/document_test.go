package reports

import (
	"io"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-pdf/fpdf"
)

func TestOneLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Zoë Nuñez", "Zoë Nuñez"},
		{"  Łukasz \r\n\t Wróbel  ", "Łukasz Wróbel"},
		{"<script>alert(1)</script>", "<script>alert(1)</script>"},
		{"a\x00b\x1bc\u0085d", "a b c d"},
		{"abc\u202edcb\u202c \u2066x\u2069\u200f", "abcdcb x"},
		{"bad \xff\xfe utf8", "bad \uFFFD\uFFFD utf8"},
		{"sun 🌻 flower", "sun \uFFFD flower"},
		{"line\u2028sep", "line sep"},
	} {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMultiLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"1. One\r\n2. Two\r3. Three\n", "1. One\n2. Two\n3. Three"},
		{"para  \n\n\tindented\x00", "para\n\n    indented"},
		{"\u202eflip\u202c 🌻", "flip \uFFFD"},
	} {
		if got := multiLine(tt.in); got != tt.want {
			t.Errorf("multiLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// oddTexts are inputs that have broken fpdf or text extraction elsewhere:
// emoji (beyond fpdf's width table), invalid UTF-8, controls, bidi overrides,
// combining marks, noncharacters, right-to-left and CJK scripts (no glyphs in
// DejaVu Sans), very long words and fpdf's default page-count alias.
var oddTexts = []string{
	"Zoë Nuñez", "Łukasz Wróbel", "Οικία / Дом", "🌻\U0010FFFF", "\xff\xfe\x00",
	"\u202e\u2066", "e\u0301\u0301\u0301", "\uFFFF\uFFFE\uFEFF", strings.Repeat("W", 500),
	"שלום عربي", "中文字符", "{nb} of {nb}", `(unbalanced \) parens\`, "\r\n\t",
}

// TestRender_OddText checks that odd text neither panics nor fails a whole
// document, through to Output.
func TestRender_OddText(t *testing.T) {
	for _, s := range oddTexts {
		err := render(io.Discard, document{ID: s, Title: s}, func(pdf *fpdf.Fpdf) {
			printOdd(pdf, s)
		})
		if err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// FuzzText checks that oneLine and multiLine leave only text fpdf handles
// (valid UTF-8, nothing beyond U+FFFF, no controls or bidi controls), and
// prints it the way certificates do without a panic or an fpdf error.
//
// Registering the fonts is most of a document's cost (and far more under the
// fuzzer's instrumentation), so one document is shared by many inputs and
// replaced every 100; what is checked per input is what fpdf does with the
// text on the page. TestRender_OddText covers whole documents.
func FuzzText(f *testing.F) {
	for _, s := range oddTexts {
		f.Add(s)
	}
	var (
		pdf *fpdf.Fpdf
		n   int
	)
	f.Fuzz(func(t *testing.T, s string) {
		for _, tt := range []struct {
			name     string
			out      string
			newlines bool
		}{
			{"oneLine", oneLine(s), false},
			{"multiLine", multiLine(s), true},
		} {
			if !utf8.ValidString(tt.out) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8", tt.name, s, tt.out)
			}
			for _, r := range tt.out {
				if r > 0xffff || isBidiControl(r) || (unicode.IsControl(r) && !(tt.newlines && r == '\n')) {
					t.Fatalf("%s(%q) = %q: contains %U", tt.name, s, tt.out, r)
				}
			}
		}
		if line := oneLine(s); line != strings.TrimSpace(line) || strings.Contains(line, "  ") {
			t.Fatalf("oneLine(%q) = %q: untrimmed or double spaces", s, line)
		}

		if n%100 == 0 {
			pdf = newDocument(document{}, 1)
		}
		n++
		printOdd(pdf, s)
		if err := pdf.Error(); err != nil {
			t.Fatal(err)
		}
	})
}

// printOdd prints s the ways a certificate prints user text.
func printOdd(pdf *fpdf.Fpdf, s string) {
	p := &printer{pdf: pdf, loc: time.UTC}
	p.heading(s)
	p.field(s, s)
	p.box(colorWarn, s, s)
	pdf.SetFont(fontFamily, "", 9)
	pdf.MultiCell(contentWidth, 4.4, multiLine(s), "", "L", false)
}
