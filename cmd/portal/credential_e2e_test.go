package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// rotateCredential asks for a new secret on the device page, as a manager
// does, and returns it (the page shows it once, on the answer or on the page
// the answer redirects to).
func rotateCredential(t *testing.T, mgr *Client, device string) string {
	t.Helper()
	status, loc, body := mgr.Post(device, device+"/credential", nil)
	if status == http.StatusSeeOther {
		status, body = mgr.Get(loc)
	}
	secret := regexp.MustCompile(`Device secret \(shown once\):</strong> <code class="hash">([A-Za-z0-9_-]+)</code>`).FindStringSubmatch(body)
	if status != http.StatusOK || secret == nil {
		t.Fatalf("credential: %d\n%s", status, body)
	}
	return secret[1]
}

// dialDevice connects a bare MQTT 5 client (no reconnects) as the device.
func dialDevice(t *testing.T, p *Portal, id int64, secret string, onServerDisconnect func(*paho.Disconnect)) (*paho.Client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.MQTT, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	clientID := devicectl.ClientID(id)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID, OnServerDisconnect: onServerDisconnect})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: strconv.FormatInt(id, 10), PasswordFlag: true, Password: []byte(secret)}); err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func publishEvent(c *paho.Client, id int64, eventID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Publish(ctx, &paho.Publish{Topic: devicectl.EventsTopic(id), QoS: 1, Payload: mustJSON(devicectl.EventMessage{
		EventID: eventID, OccurredAt: time.Now().UTC(), Method: "courier_app", ActorRef: "pkg-1", Result: doorledger.UnlockGranted})})
	return err
}

// A manager rotates a device's secret while a client is connected with the
// old one: the embedded broker disconnects it at once, what it publishes
// afterwards is not saved, the old secret no longer connects, the new one
// does, and the journal says so.
func TestEndToEndRotatedSecretCutsOldSession(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	lastPortal = p
	mgr, device, id, oldSecret := consentedDevice(t, p)

	cut := make(chan *paho.Disconnect, 1)
	old, err := dialDevice(t, p, id, oldSecret, func(d *paho.Disconnect) { cut <- d })
	if err != nil {
		t.Fatalf("connect with the old secret: %v", err)
	}
	if err := publishEvent(old, id, "before-rotation"); err != nil {
		t.Fatalf("event before the rotation: %v", err)
	}

	newSecret := rotateCredential(t, mgr, device)
	if newSecret == oldSecret {
		t.Fatal("the secret did not change")
	}
	// The rotation's answer comes after the broker ended the old session.
	select {
	case d := <-cut:
		if d.ReasonCode != 0x87 {
			t.Errorf("DISCONNECT reason %#x, want 0x87", d.ReasonCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the old session was not disconnected")
	}
	if err := publishEvent(old, id, "after-rotation"); err == nil {
		t.Fatal("the old session published after the rotation")
	}
	if _, err := dialDevice(t, p, id, oldSecret, nil); err == nil {
		t.Fatal("the old secret connects after the rotation")
	}
	fresh, err := dialDevice(t, p, id, newSecret, nil)
	if err != nil {
		t.Fatalf("connect with the new secret: %v", err)
	}
	if err := publishEvent(fresh, id, "new-secret"); err != nil {
		t.Fatalf("event with the new secret: %v", err)
	}

	// Read what was saved, as the auditor would: the file itself.
	r, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var events []string
	rows, err := r.Query(`SELECT event_id FROM unlock_events WHERE device_id = ? ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var e string
		rows.Scan(&e)
		events = append(events, e)
	}
	rows.Close()
	if strings.Join(events, ",") != "before-rotation,new-secret" {
		t.Fatalf("events saved: %v, want [before-rotation new-secret]", events)
	}
	var detail string
	if err := r.QueryRow(`SELECT detail FROM audit_entries WHERE action = 'device.disconnect' AND object_id = ?`, id).Scan(&detail); err != nil {
		t.Fatalf("no journal entry of the disconnect: %v", err)
	}
	var d struct {
		Reason   string `json:"reason"`
		Sessions int    `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil || d.Sessions != 1 || d.Reason != "secret rotated" {
		t.Fatalf("journal detail %s", detail)
	}
}
