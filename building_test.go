package doorledger

import (
	"testing"
	"time"
)

// TestLocationLoadedOnce: a time zone is read from the zone data once and
// shared; a name that does not load is UTC, as Building.Location always said.
func TestLocationLoadedOnce(t *testing.T) {
	ny := Location("America/New_York")
	if ny.String() != "America/New_York" {
		t.Fatalf("Location = %v", ny)
	}
	if again := (&Building{Timezone: "America/New_York"}).Location(); again != ny {
		t.Error("the second load of a zone is not the shared one")
	}
	for _, name := range []string{"", "Nowhere/Atlantis", "../../etc/passwd"} {
		if got := Location(name); got != time.UTC {
			t.Errorf("Location(%q) = %v, want UTC", name, got)
		}
	}
	// A shared zone still converts as a freshly loaded one does.
	fresh, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC) // across the spring-forward change
	if a, b := at.In(ny).Format(time.RFC3339), at.In(fresh).Format(time.RFC3339); a != b {
		t.Errorf("shared zone %s, fresh %s", a, b)
	}
}

// TestLocationKeepsOnlyZones: names that do not load are not kept, so no
// stream of made-up names grows the shared map.
func TestLocationKeepsOnlyZones(t *testing.T) {
	Location("Nowhere/Kept-Not")
	if _, kept := locations.Load("Nowhere/Kept-Not"); kept {
		t.Error("a name that does not load was kept")
	}
}
