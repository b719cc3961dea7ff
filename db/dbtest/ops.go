package dbtest

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var opsTests = []test{
	{"OpsStats", testOpsStats},
}

// The operator's figures follow what the database holds: commands by status,
// confirmed revokes in the latency histogram, mail waiting, reports queued,
// rows not yet in the log; admins and the system only.
func testOpsStats(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	id, _ := w.EnabledDevice(t, w.A)
	_, err := w.Ops.OpsStats(as(w.MgrA))
	WantCode(t, "a manager reads the operator's figures", err, doorledger.EFORBIDDEN)

	read := func() *doorledger.OpsStats {
		t.Helper()
		st, err := w.Ops.OpsStats(sys())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := read()
	if got := st.Commands["confirmed"]; got != 1 {
		t.Errorf("confirmed commands = %d, want 1 (the enable); %v", got, st.Commands)
	}
	if st.RevokeLatency.Count != 0 {
		t.Errorf("revoke latency counts %d revokes before any", st.RevokeLatency.Count)
	}
	if st.LogPending == 0 || st.LogLag < 0 {
		t.Errorf("log backlog before any sequencing: %d rows, lag %v", st.LogPending, st.LogLag)
	}

	cmd, err := w.Devices.SetDesiredState(as(w.MgrA), id, doorledger.StateDisabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if open := read().Commands; open["pending"]+open["sent"] != 1 {
		t.Errorf("open commands after the revoke: %v, want 1 pending or sent", open)
	}
	w.Report(t, id, doorledger.StateDisabled, cmd.Version)
	if _, err := w.Reports.RequestReport(as(w.MgrA), doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF,
		From: w.Now.AddDate(0, 0, -1).Format(time.DateOnly), To: w.Now.Format(time.DateOnly)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Logs.Sequence(sys()); err != nil {
		t.Fatal(err)
	}

	st = read()
	if got := st.Commands["confirmed"]; got != 2 {
		t.Errorf("confirmed commands = %d, want 2; %v", got, st.Commands)
	}
	h := st.RevokeLatency
	if h.Count != 1 || len(h.Counts) != len(doorledger.RevokeLatencyBounds) || h.Sum < 0 {
		t.Fatalf("revoke latency after one confirmed revoke: %+v", h)
	}
	for i := 1; i < len(h.Counts); i++ {
		if h.Counts[i] < h.Counts[i-1] {
			t.Errorf("revoke latency buckets not cumulative: %v", h.Counts)
		}
	}
	if last := h.Counts[len(h.Counts)-1]; last != 1 {
		t.Errorf("the revoke confirmed at once is not within the last bound (%v): %v", doorledger.RevokeLatencyBounds[len(h.Counts)-1], h.Counts)
	}
	if st.ReportsQueued != 1 {
		t.Errorf("reports queued = %d, want 1", st.ReportsQueued)
	}
	if want := int64(len(w.pendingMail(t))); st.OutboxQueued != want || st.OutboxFailed != 0 {
		t.Errorf("outbox: %d queued, %d failed; want %d queued", st.OutboxQueued, st.OutboxFailed, want)
	}
	if st.LogPending != 0 || st.LogLag != 0 {
		t.Errorf("log backlog after sequencing: %d rows, lag %v", st.LogPending, st.LogLag)
	}
}
