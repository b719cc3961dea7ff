package notice

import (
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// The alerts both backends queue about devices and the witnesses, byte for byte.

func TestDeviceFoundAlert(t *testing.T) {
	subject, body := DeviceFoundAlert("mgr@example.com", "Alder Court", doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-7", Location: "lobby"}, 12)
	if want := "Unconsented device found at Alder Court"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	if want := "mgr@example.com recorded a device found without consent at Alder Court: Acme (model unknown), serial SN-7, at lobby.\n" +
		"It is registered as device 12, flagged unconsented and disabled. No signer has consented to it.\n"; body != want {
		t.Errorf("body =\n%q\nwant\n%q", body, want)
	}
}

func TestDeviceOfflineAlert(t *testing.T) {
	since := time.Date(2026, 7, 1, 16, 30, 5, 0, time.UTC)
	subject, body := DeviceOfflineAlert(12, doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-7", Location: "lobby"}, "Alder Court", since, 90*time.Minute)
	if want := "Device 12 offline at Alder Court"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	if want := "Device 12 (Acme (model unknown), serial SN-7, at lobby) at Alder Court has not been heard from since Wed, 01 Jul 2026 16:30:05 UTC, longer than its heartbeat of 1h30m0s.\n" +
		"Commands cannot reach it while it is silent, and its unlock events arrive late if at all. Check its power and network, or the panel itself.\n"; body != want {
		t.Errorf("body =\n%q\nwant\n%q", body, want)
	}
}

func TestCommandNotConfirmedAlert(t *testing.T) {
	det := doorledger.DeviceDetails{Vendor: "Acme", Model: "K1", Serial: "SN-7", Location: "lobby"}
	subject, body := CommandNotConfirmedAlert(12, det, "Alder Court", doorledger.StateDisabled, 40, 3, 90*time.Second)
	if want := "Device 12 did not confirm: disabled at Alder Court"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	if want := "Device 12 (Acme K1, serial SN-7, at lobby) at Alder Court has not confirmed it is disabled (command 40, version 3) within 1m30s.\n" +
		"Doorledger keeps retrying. Until it confirms, couriers may still be able to open the door. If it stays silent, check its power and network, or the panel itself.\n"; body != want {
		t.Errorf("body =\n%q\nwant\n%q", body, want)
	}
	if _, body := CommandNotConfirmedAlert(12, det, "Alder Court", doorledger.StateEnabled, 41, 4, time.Minute); !strings.Contains(body, "Until it confirms, it may still be disabled.") {
		t.Errorf("enable alert: %q", body)
	}
}

func TestWitnessRefusedAlert(t *testing.T) {
	subject, body := WitnessRefusedAlert("Lawyer", &doorledger.WitnessRefusal{Size: 9, Reason: "bad proof", Security: true})
	if want := "SECURITY: Witness Lawyer refused the audit log's checkpoint of 9 entries"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	if want := "The witness Lawyer refused the audit log's checkpoint of 9 entries: bad proof.\n" +
		"\nThis is a security event. The witness did not accept that this checkpoint extends the log it cosigned before, " +
		"or did not accept the log's signature: the log it was shown may have been rewritten (a fork). " +
		"Verify the audit log now (Admin > Audit log > Verify now) and compare the heads your boards hold.\n"; body != want {
		t.Errorf("body =\n%q\nwant\n%q", body, want)
	}
}
