package doorledger

import (
	"testing"
	"time"
)

func TestRankAttention(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	counts := map[int64]*AttentionCounts{}
	for id, n := range map[int64]int{1: 2, 2: 5, 3: 2, 4: 1} {
		c := &AttentionCounts{}
		c.Add(AttentionOffline, n)
		counts[id] = c
	}
	counts[3].OldestAwaiting = now.Add(-time.Hour)
	counts[4].OldestAwaiting = now.Add(-2 * time.Hour)
	names := map[int64][2]string{1: {"Birch", "UTC"}, 2: {"Cedar", "UTC"}, 3: {"Alder", "UTC"}, 4: {"Dogwood", "UTC"}}
	var a Attention
	if ids := a.Sum(counts); len(ids) != 4 || a.Totals.Of(AttentionOffline) != 10 || !a.Totals.OldestAwaiting.Equal(now.Add(-2*time.Hour)) {
		t.Fatalf("Sum = %v, totals %+v", ids, a.Totals)
	}
	list := RankAttention(counts, names, 3)
	var got []string
	for _, b := range list {
		got = append(got, b.Name)
	}
	if len(got) != 3 || got[0] != "Cedar" || got[1] != "Alder" || got[2] != "Birch" {
		t.Errorf("ranked %v, want Cedar, Alder, Birch", got)
	}
}

func TestNewAttentionItem(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	if it := NewAttentionItem(AttentionOffline, 7, "Acme", "K2", "SN-1", "lobby panel", "", at); it.DeviceID != 7 || it.Label != "Acme K2, serial SN-1, at lobby panel" || !it.At.Equal(at) {
		t.Errorf("device item: %+v", it)
	}
	if it := NewAttentionItem(AttentionAwaiting, 8, "Acme", "", "", "", "", at); it.ConsentID != 8 || it.Label != "Acme" {
		t.Errorf("consent item: %+v", it)
	}
	if it := NewAttentionItem(AttentionResidentReport, 9, "", "", "", "back door", "", at); it.ReportID != 9 || it.Label != "back door" {
		t.Errorf("report item: %+v", it)
	}
	if got := AttentionBound(AttentionLapsing, at); !got.Equal(at.Add(AttentionLapsingWithin)) {
		t.Errorf("lapsing bound = %v", got)
	}
	if got := AttentionBound(AttentionEnded, at); !got.Equal(at.Add(-AttentionEndedWithin)) {
		t.Errorf("ended bound = %v", got)
	}
	if o := (AttentionOptions{}).WithDefaults(); o.MaxBuildings != 50 || o.ItemsPerKind != 5 {
		t.Errorf("defaults = %+v", o)
	}
}
