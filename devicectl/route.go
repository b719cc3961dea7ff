package devicectl

import (
	"context"
	"errors"
	"fmt"

	"github.com/doorledger/doorledger"
)

// RouteLookup says how each device is reached (implemented by db.VendorService).
type RouteLookup interface {
	// DeviceRoute returns a zero route for a device on MQTT, or its vendor
	// integration's webhook and current key. An error (an unknown device, a
	// retired integration) fails the push, and the command keeps it.
	DeviceRoute(ctx context.Context, deviceID int64) (doorledger.DeviceRoute, error)
}

// Router is the controller's transport when some devices are managed by a
// vendor's cloud: it pushes each desired state over MQTT, or to the webhook of
// the device's vendor integration, as the device's route says at that moment.
type Router struct {
	routes  RouteLookup
	mqtt    doorledger.Transport
	webhook *Webhook
}

var _ doorledger.Transport = (*Router)(nil)

// NewRouter returns a router over mqtt (the embedded broker or an external
// broker's client) and a webhook transport configured by wh, whose Target the
// router sets from routes.
func NewRouter(routes RouteLookup, mqtt doorledger.Transport, wh WebhookConfig) (*Router, error) {
	if routes == nil || mqtt == nil {
		return nil, errors.New("new router: a route lookup and an MQTT transport are required")
	}
	r := &Router{routes: routes, mqtt: mqtt}
	wh.Target = r.target
	w, err := NewWebhook(wh)
	if err != nil {
		return nil, err
	}
	r.webhook = w
	return r, nil
}

// routeKey carries the route Push looked up to the webhook's Target, so that
// one push reads the device's route once.
type routeKey struct{}

// Push delivers d by the device's route.
func (r *Router) Push(ctx context.Context, d doorledger.DesiredState) error {
	route, err := r.routes.DeviceRoute(ctx, d.DeviceID)
	if err != nil {
		return fmt.Errorf("route device %d: %w", d.DeviceID, err)
	}
	if route.VendorID == 0 {
		return r.mqtt.Push(ctx, d)
	}
	return r.webhook.Push(context.WithValue(ctx, routeKey{}, route), d)
}

func (r *Router) target(ctx context.Context, deviceID int64) (WebhookTarget, error) {
	route, ok := ctx.Value(routeKey{}).(doorledger.DeviceRoute)
	if !ok {
		var err error
		if route, err = r.routes.DeviceRoute(ctx, deviceID); err != nil {
			return WebhookTarget{}, err
		}
	}
	if route.VendorID == 0 || route.WebhookURL == "" || len(route.Key) == 0 {
		return WebhookTarget{}, fmt.Errorf("device %d has no vendor webhook", deviceID)
	}
	return WebhookTarget{URL: route.WebhookURL, Secret: route.Key}, nil
}
