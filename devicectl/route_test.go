package devicectl_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// routeTable is a RouteLookup over a map, counting lookups.
type routeTable struct {
	mu      sync.Mutex
	routes  map[int64]doorledger.DeviceRoute
	errs    map[int64]error
	lookups int
}

func (t *routeTable) DeviceRoute(_ context.Context, id int64) (doorledger.DeviceRoute, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lookups++
	if err := t.errs[id]; err != nil {
		return doorledger.DeviceRoute{}, err
	}
	return t.routes[id], nil
}

func (t *routeTable) set(id int64, r doorledger.DeviceRoute) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.routes[id] = r
}

// mqttRecorder stands in for the broker: it records what it is given.
type mqttRecorder struct {
	mu     sync.Mutex
	pushed []doorledger.DesiredState
}

func (m *mqttRecorder) Push(_ context.Context, d doorledger.DesiredState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pushed = append(m.pushed, d)
	return nil
}

func newRouter(t *testing.T, table *routeTable, mqtt *mqttRecorder) *devicectl.Router {
	t.Helper()
	r, err := devicectl.NewRouter(table, mqtt, devicectl.WebhookConfig{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouterPushesByRoute(t *testing.T) {
	v := &vendor{statuses: []int{500}} // the first request fails: retried
	srv := httptest.NewServer(v)
	defer srv.Close()
	table := &routeTable{routes: map[int64]doorledger.DeviceRoute{
		5: {VendorID: 2, WebhookURL: srv.URL + "/doorledger", Key: []byte("vendor-secret")},
	}}
	mqtt := &mqttRecorder{}
	r := newRouter(t, table, mqtt)
	ctx := context.Background()

	// Device 7 has no vendor integration: MQTT.
	onMQTT := desired
	onMQTT.DeviceID = 7
	if err := r.Push(ctx, onMQTT); err != nil {
		t.Fatal(err)
	}
	if len(mqtt.pushed) != 1 || mqtt.pushed[0].DeviceID != 7 || len(v.bodies) != 0 {
		t.Fatalf("mqtt %v, vendor %v", mqtt.pushed, v.bodies)
	}

	// Device 5 is under a vendor integration: its webhook, signed with its
	// key, retried after the 500; the route is looked up once per push.
	table.lookups = 0
	if err := r.Push(ctx, desired); err != nil {
		t.Fatal(err)
	}
	if len(v.bodies) != 2 || v.bodies[1].DeviceID != 5 || v.bodies[1].Version != desired.Version || len(mqtt.pushed) != 1 {
		t.Fatalf("vendor got %+v, mqtt %d", v.bodies, len(mqtt.pushed))
	}
	for i, err := range v.errs {
		if err != nil {
			t.Errorf("request %d: signature %v", i, err)
		}
	}
	if table.lookups != 1 {
		t.Errorf("lookups %d, want 1", table.lookups)
	}

	// Moved back to MQTT: the next push follows.
	table.set(5, doorledger.DeviceRoute{})
	if err := r.Push(ctx, desired); err != nil {
		t.Fatal(err)
	}
	if len(mqtt.pushed) != 2 || len(v.bodies) != 2 {
		t.Errorf("after the move: mqtt %d, vendor %d", len(mqtt.pushed), len(v.bodies))
	}
}

func TestRouterFailures(t *testing.T) {
	v := &vendor{statuses: []int{500, 500, 500}}
	srv := httptest.NewServer(v)
	defer srv.Close()
	retired := doorledger.Errorf(doorledger.ECONFLICT, "Device 6 is under the vendor integration \"Old\", which is retired.")
	table := &routeTable{
		routes: map[int64]doorledger.DeviceRoute{5: {VendorID: 2, WebhookURL: srv.URL, Key: []byte("vendor-secret")}},
		errs:   map[int64]error{6: retired},
	}
	mqtt := &mqttRecorder{}
	r := newRouter(t, table, mqtt)

	// A route that cannot be used fails the push, and the error says why.
	d := desired
	d.DeviceID = 6
	err := r.Push(context.Background(), d)
	if !errors.Is(err, retired) || !strings.Contains(err.Error(), "route device 6") {
		t.Errorf("retired integration: %v", err)
	}
	// A vendor that keeps failing: the push gives up after MaxAttempts, for
	// the controller to record and retry later.
	err = r.Push(context.Background(), desired)
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") || len(v.bodies) != 3 {
		t.Errorf("failing vendor: %v after %d requests", err, len(v.bodies))
	}
	if len(mqtt.pushed) != 0 {
		t.Errorf("a failed push fell back to MQTT: %v", mqtt.pushed)
	}

	if _, err := devicectl.NewRouter(nil, mqtt, devicectl.WebhookConfig{}); err == nil {
		t.Error("a router without a route lookup")
	}
}
