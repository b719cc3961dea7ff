// Package namecheck compares the name a signer types when signing with the
// name on the building's roster. The portal verifies the signer's roster
// address (by link or code), never their name; a typed name that differs is not
// refused, but the signer is asked to correct or confirm it and the record says
// so. This package decides what "differs" means.
//
// # The rule
//
// Both names are first folded into words:
//
//  1. Unicode compatibility decomposition (NFKD), so "é" is "e" plus an
//     accent, the ligature "ﬁ" is "fi" and a full-width "Ａ" is "A".
//  2. Accents are dropped: combining marks that follow a Latin, Greek or
//     Cyrillic letter. (Marks of other scripts, such as Devanagari vowel
//     signs, are part of the letter and kept.)
//  3. Letters that do not decompose are spelled in plain Latin letters:
//     Ł→L, Ø→O, Đ→D, Ð→D, Þ→TH, Æ→AE, Œ→OE, ß→ss, Ħ→H, Ŧ→T, ı→i, Ŋ→NG and a
//     few more (see fold).
//  4. Case is folded (Unicode full case folding: "ß" and "SS" agree, so do
//     final and medial sigma).
//  5. Apostrophes and hyphens are deleted, joining what they joined
//     ("O'Brien" is "obrien", "Nuñez-Łukasz" is one word "nunezlukasz").
//  6. Everything else that is not a letter, a mark or a digit (spaces,
//     periods, commas) separates words.
//
// The names match when either
//
//   - (a) their words, written together without spaces, are the same letters
//     ("Zoe Nunez Lukasz" and "Zoë Nuñez-Łukasz"; "Mary Ann" and "Maryann"),
//     or
//   - (b) both have at least two words, the first word matches and the last
//     word matches, and what lies between is not compared: a middle name or
//     an initial may be added, dropped or differ ("Anna M. Kowalska",
//     "Anna Kowalska" and "Anna Maria Kowalska" all match one another).
//     Here "the first word" and "the last word" may each be written as one
//     word or as several ("Mary Ann J. Lee" matches "Mary-Ann Lee";
//     "Zoe M. Nunez Lukasz" matches "Zoë Nuñez-Łukasz").
//
// Anything else differs: another person's name, a first name alone, the
// words in another order, an initial instead of the first name.
package namecheck

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Match reports whether the typed name matches the roster name under the
// package's rule. An empty name (after folding) never matches.
func Match(typed, roster string) bool {
	t, r := Words(typed), Words(roster)
	if len(t) == 0 || len(r) == 0 {
		return false
	}
	if strings.Join(t, "") == strings.Join(r, "") {
		return true // (a)
	}
	// (b): a first part and a last part that match, sharing no word. Words
	// are never empty, so a joined prefix (or suffix) of one name equals at
	// most one of the other's: there are at most min(len(t), len(r)) candidates
	// on each end, paired in at most that many squared steps, however the
	// name is spaced.
	firsts, lasts := joinedMatches(t, r, false), joinedMatches(t, r, true)
	for _, f := range firsts {
		for _, l := range lasts {
			if f.t+l.t <= len(t) && f.r+l.r <= len(r) {
				return true
			}
		}
	}
	return false
}

// span counts words on each side: t of the typed name, r of the roster's.
type span struct{ t, r int }

// joinedMatches returns each (i, j) such that the first i words of t, written
// together, equal the first j words of r (the last ones when fromEnd), with at
// least one word left over on each side.
func joinedMatches(t, r []string, fromEnd bool) []span {
	// parts returns w's first (or last) n words written together, for n = 1…len(w)-1.
	parts := func(w []string) []string {
		out := make([]string, 0, len(w))
		acc := ""
		for n := 1; n < len(w); n++ {
			if fromEnd {
				acc = w[len(w)-n] + acc
			} else {
				acc += w[n-1]
			}
			out = append(out, acc)
		}
		return out
	}
	of := map[string]int{}
	for j, p := range parts(r) {
		of[p] = j + 1
	}
	var out []span
	for i, p := range parts(t) {
		if j, ok := of[p]; ok {
			out = append(out, span{i + 1, j})
		}
	}
	return out
}

// Words folds a name into its words, as the package doc describes.
func Words(name string) []string {
	folder := cases.Fold() // a Caser may keep state: one per call
	var words []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			words = append(words, folder.String(cur.String()))
			cur.Reset()
		}
	}
	var base rune // the last letter, to tell an accent from a mark of its own script
	for _, r := range norm.NFKD.String(name) {
		switch {
		case unicode.Is(unicode.Mn, r) && isAccented(base):
			// an accent: dropped
		case unicode.IsMark(r):
			if cur.Len() > 0 {
				cur.WriteRune(r)
			}
		case isApostrophe(r) || isHyphen(r):
			// deleted: the parts it joined stay one word
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			base = r
			if s, ok := fold[r]; ok {
				cur.WriteString(s)
			} else {
				cur.WriteRune(r)
			}
		default:
			base = 0
			flush()
		}
	}
	flush()
	return words
}

// isAccented reports whether a combining mark after letter r is an accent
// (dropped) rather than part of a letter of its own script (kept).
func isAccented(r rune) bool {
	return r != 0 && (unicode.Is(unicode.Latin, r) || unicode.Is(unicode.Greek, r) || unicode.Is(unicode.Cyrillic, r))
}

func isApostrophe(r rune) bool {
	switch r {
	case '\'', '`', '\u2018', '\u2019', '\u201b', '\u02bc', '\u02b9', '\u02bb', '\u2032', '\uff07':
		return true
	}
	return false
}

func isHyphen(r rune) bool {
	return unicode.Is(unicode.Pd, r) || r == '\u00ad' || r == '\u2212' // dashes, soft hyphen, minus sign
}

// fold spells the letters that have no decomposition in plain Latin letters,
// as they are commonly written without them.
var fold = map[rune]string{
	'Ł': "L", 'ł': "l",
	'Ø': "O", 'ø': "o",
	'Đ': "D", 'đ': "d",
	'Ð': "D", 'ð': "d",
	'Ɖ': "D", 'ɖ': "d",
	'Þ': "TH", 'þ': "th",
	'Æ': "AE", 'æ': "ae",
	'Œ': "OE", 'œ': "oe",
	'ß': "ss", 'ẞ': "SS",
	'Ħ': "H", 'ħ': "h",
	'Ŧ': "T", 'ŧ': "t",
	'ı': "i",
	'Ŋ': "NG", 'ŋ': "ng",
	'Ƶ': "Z", 'ƶ': "z",
	'Ǥ': "G", 'ǥ': "g",
	'Ƀ': "B", 'ƀ': "b",
	'Ɨ': "I", 'ɨ': "i",
	'Ƒ': "F", 'ƒ': "f",
	'ĸ': "q",
}
