package sentlog

import (
	"testing"
	"time"
)

func TestLog(t *testing.T) {
	var l Log
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	if !l.Add([]Mark{{Command: 1, Device: 10, At: at}, {Command: 2, Device: 20, At: at}}) {
		t.Fatal("the first Add does not ask for a flush")
	}
	if l.Add([]Mark{{Command: 3, Device: 10, At: at}}) {
		t.Fatal("a second Add asks for another flush while one is scheduled")
	}
	got := l.Take(10)
	if len(got) != 2 || got[0].Command != 1 || got[1].Command != 3 || l.Len() != 1 {
		t.Fatalf("Take(10) = %+v, %d left", got, l.Len())
	}
	l.Restore(got)
	if l.Len() != 3 {
		t.Fatalf("after Restore: %d held, want 3", l.Len())
	}
	if all := l.Take(0); len(all) != 3 || l.Len() != 0 {
		t.Fatalf("Take(0) = %+v, %d left", all, l.Len())
	}
	if l.Add(nil) {
		t.Error("an empty Add while armed asks for a flush")
	}
	l.Disarm()
	if l.Add(nil) {
		t.Error("an Add of nothing, nothing held, asks for a flush")
	}
	if !l.Add([]Mark{{Command: 4, Device: 30, At: at}}) {
		t.Error("an Add after Disarm does not ask for a flush")
	}
}
