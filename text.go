package doorledger

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What people type lands in the consent terms a signer signs, in PDFs, in mail
// subjects and headers and on pages. A line break or an invisible control in a
// field meant to be one line lets its author reshape those documents: a
// building name with "\nIMPORTANT: …" adds a paragraph to the terms, a CR/LF
// in a subject starts a new mail header, and a right-to-left override makes
// "7 days" read backwards in a PDF. So every Validate checks its text fields
// with ValidateLine (single-line fields) or ValidateText (notes and reasons),
// and refuses, with a message beside the field, any of:
//
//   - a character of Unicode category Cc (C0 controls U+0000–U+001F, among them
//     tab, LF and CR; DEL U+007F; C1 controls U+0080–U+009F, among them NEL
//     U+0085). Multi-line text keeps LF (CRLF and CR are turned into LF first);
//     no other control has a use in text a person types into a form.
//   - U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: line breaks to
//     PDFs, browsers and mail readers although they are not Cc.
//   - the bidirectional embeddings and overrides U+202A–U+202E and isolates
//     U+2066–U+2069: invisible, they reorder how the text around them is shown
//     ("Trojan Source"), and names in right-to-left scripts display correctly
//     without them (the Unicode bidi algorithm needs no help for a name or an
//     address).
//   - bytes that are not UTF-8.
//
// Other format characters (category Cf) stay allowed: the zero-width joiner and
// non-joiner are needed to spell words in Persian, the Indic scripts and emoji
// sequences, and the left-to-right and right-to-left marks (U+200E, U+200F)
// only nudge neutral characters such as punctuation, never reorder a run.

// ValidateLine adds a message to v for field when s is not one line of plain
// text (see above). Call it on the trimmed value.
func ValidateLine(v Validation, field, s string) {
	if msg := textProblem(s, false); msg != "" {
		v.Add(field, msg)
	}
}

// ValidateText adds a message to v for field when s, multi-line text already
// normalized by NormalizeText, holds a character other than line feeds that
// ValidateLine refuses.
func ValidateText(v Validation, field, s string) {
	if msg := textProblem(s, true); msg != "" {
		v.Add(field, msg)
	}
}

// NormalizeText trims multi-line text and turns its CRLF and CR line breaks
// (browsers submit a textarea's lines with CRLF) into LF.
func NormalizeText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.TrimSpace(s)
}

// RefusedRune reports whether r may not appear in a line of text a person or
// device sent (see above); multiLine admits LF.
func RefusedRune(r rune, multiLine bool) bool {
	switch {
	case r == '\n':
		return !multiLine
	case unicode.Is(unicode.Cc, r), r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// textProblem says what is wrong with s, or "" when nothing is.
func textProblem(s string, multiLine bool) string {
	if !utf8.ValidString(s) {
		return "Use plain text: this is not valid UTF-8."
	}
	i := strings.IndexFunc(s, func(r rune) bool { return RefusedRune(r, multiLine) })
	if i < 0 {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	switch r {
	case '\n', '\r', '\v', '\f', '\u0085', '\u2028', '\u2029':
		if !multiLine {
			return "Keep this on one line: remove the line break."
		}
	case '\t':
		return "Remove the tab character."
	}
	return fmt.Sprintf("Remove the invisible control character U+%04X.", r)
}

// ScrubText returns s with every character ValidateLine (multiLine:
// ValidateText) refuses replaced by a space. It is for text that must be clean
// but must not be refused: a mail subject built from a building name stored
// before these checks existed, or the reason given for disabling a device (a
// revoke never waits for its reason to be retyped).
func ScrubText(s string, multiLine bool) string {
	if textProblem(s, multiLine) == "" {
		return s
	}
	return strings.Map(func(r rune) rune {
		if RefusedRune(r, multiLine) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
}

// NormalizeReason normalizes a reason a person typed (several lines allowed,
// see NormalizeText) and checks it: EINVALID with Fields["reason"] when it is
// longer than max bytes or holds a refused character.
func NormalizeReason(reason string, max int) (string, error) {
	reason = NormalizeText(reason)
	v := Validation{}
	if len(reason) > max {
		v.Add("reason", fmt.Sprintf("Keep the reason under %d characters.", max))
	}
	ValidateText(v, "reason", reason)
	return reason, v.Err()
}
