package namecheck_test

import (
	"strings"
	"testing"

	"github.com/doorledger/doorledger/namecheck"
)

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		typed, roster string
		want          bool
	}{
		// The reported example, and the same name written every which way.
		{"Zoe Nunez Lukasz", "Zoë Nuñez-Łukasz", true},
		{"Zoë Nuñez-Łukasz", "Zoë Nuñez-Łukasz", true},
		{"zoë nuñez-łukasz", "Zoë Nuñez-Łukasz", true},
		{"ZOË NUÑEZ-ŁUKASZ", "Zoë Nuñez-Łukasz", true},
		{"  Zoë \t Nuñez–Łukasz  ", "Zoë Nuñez-Łukasz", true}, // en dash, extra spaces
		{"Zoe NunezLukasz", "Zoë Nuñez-Łukasz", true},
		{"Zoe Nunez - Lukasz", "Zoë Nuñez-Łukasz", true},
		{"Zoe\u0308 Nun\u0303ez-Lukasz", "Zoë Nuñez-Łukasz", true}, // decomposed accents
		// Middle names and initials may be added, dropped or differ.
		{"Zoe M. Nunez-Lukasz", "Zoë Nuñez-Łukasz", true},
		{"Zoe Maria Nunez-Lukasz", "Zoë Nuñez-Łukasz", true},
		{"Zoe M Nunez Lukasz", "Zoë Nuñez-Łukasz", true}, // the last word written as two
		{"Anna Kowalska", "Anna Maria Kowalska", true},
		{"Anna M. Kowalska", "Anna Maria Kowalska", true},
		{"Anna Beata Kowalska", "Anna Maria Kowalska", true},
		{"Mary Ann J. Lee", "Mary-Ann Lee", true}, // the first word written as two
		{"Mary Ann Lee", "Mary-Ann Lee", true},
		{"Maryann Lee", "Mary Ann Lee", true},
		// Letters that do not decompose are folded too.
		{"Soren Orsted", "Søren Ørsted", true},
		{"Hans Gross", "Hans Groß", true},
		{"HANS GROSS", "Hans Groß", true},
		{"Aegir Thorsson", "Ægir Þórsson", true},
		{"Dorde Dukic", "Đorđe Đukić", true},
		{"Oeuvre Boeuf", "Œuvre Bœuf", true},
		{"Ilknur Isik", "İlknur Işık", true},
		{"Lukasz Wrobel", "Łukasz Wróbel", true},
		// Apostrophes are ignored.
		{"Sean OBrien", "Seán O'Brien", true},
		{"Sean O’Brien", "Seán O'Brien", true},
		{"Sean O Brien", "Seán O'Brien", true},
		{"Maria D'Angelo", "Maria DAngelo", true},
		// Other scripts: case and accents fold, the letters must agree.
		{"ΣΩΚΡΑΤΗΣ ΠΑΠΑΔΟΠΟΥΛΟΣ", "Σωκράτης Παπαδόπουλος", true},
		{"Елка Иванова", "Ёлка Иванова", true},
		{"王小明", "王小明", true},
		{"王小红", "王小明", false},
		{"अनु", "अन", false},                           // a vowel sign is part of the letter, not an accent
		{"ｚｏｅ ｎｕｎｅｚ－ｌｕｋａｓｚ", "Zoë Nuñez-Łukasz", true}, // full-width
		// What differs.
		{"Mickey Mouse", "Zoë Nuñez-Łukasz", false},
		{"Zoe", "Zoë Nuñez-Łukasz", false},
		{"Zoe Nunez", "Zoë Nuñez-Łukasz", false},            // half of the last word
		{"Zoe Lukasz", "Zoë Nuñez-Łukasz", false},           // the other half
		{"Nunez-Lukasz Zoe", "Zoë Nuñez-Łukasz", false},     // another order
		{"Nunez-Lukasz, Zoe", "Zoë Nuñez-Łukasz", false},    // another order
		{"Z. Nunez-Lukasz", "Zoë Nuñez-Łukasz", false},      // an initial for the first name
		{"Zoe Nunez-Lukasz Jr.", "Zoë Nuñez-Łukasz", false}, // a last word added
		{"Zoe Nunez-Lukasz", "Zoë", false},
		{"Madonna Ciccone", "Madonna", false},
		{"Anna", "Anna Maria Kowalska", false},
		{"", "Zoë Nuñez-Łukasz", false},
		{"-- ' .", "Zoë Nuñez-Łukasz", false},
		{"Zoe Nunez-Lukasz", "", false},
	} {
		if got := namecheck.Match(tt.typed, tt.roster); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v (words %q and %q)", tt.typed, tt.roster, got, tt.want,
				namecheck.Words(tt.typed), namecheck.Words(tt.roster))
		}
		// The rule is symmetric: which name is the roster's does not matter.
		if got := namecheck.Match(tt.roster, tt.typed); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v (swapped)", tt.roster, tt.typed, got, tt.want)
		}
	}
}

func TestWords(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"Zoë Nuñez-Łukasz", "zoe nunezlukasz"},
		{"Seán O'Brien", "sean obrien"},
		{"J.R.R. Tolkien", "j r r tolkien"},
		{"Hans Groß", "hans gross"},
		{"Ægir Þórsson", "aegir thorsson"},
		{"ΣΩΚΡΑΤΗΣ", "σωκρατησ"},
		{"", ""},
	} {
		if got := strings.Join(namecheck.Words(tt.name), " "); got != tt.want {
			t.Errorf("Words(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// A name of many one-letter words stays cheap to compare.
func TestMatchManyWords(t *testing.T) {
	typed := strings.Repeat("a ", 100) + "b"
	roster := "a " + strings.Repeat("c ", 99) + "b"
	if !namecheck.Match(typed, roster) {
		t.Fatalf("first and last words agree: want a match")
	}
	if namecheck.Match(strings.Repeat("a ", 100), strings.Repeat("a ", 99)+"b") {
		t.Fatalf("last words differ: want no match")
	}
}

func BenchmarkMatchLong(b *testing.B) {
	typed := strings.Repeat("a ", 100)
	roster := strings.Repeat("a ", 99) + "b"
	for b.Loop() {
		namecheck.Match(typed, roster)
	}
}
