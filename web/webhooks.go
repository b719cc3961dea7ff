package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// The admin page of outbound events: subscribe a system (its secret is
// rendered in the response that made it, never stored in clear or flashed),
// disable one, list deliveries with the receivers' answers, replay one.

// webhooksView builds the page's model, deliveries filtered by ?state=.
func webhooksView(c echo.Context, webhooks doorledger.WebhookService) (views.WebhooksView, error) {
	ctx := c.Request().Context()
	v := views.WebhooksView{State: c.QueryParam("state")}
	if v.State != "" && !slices.Contains([]string{doorledger.DeliveryPending, doorledger.DeliveryRetrying, doorledger.DeliveryDelivered, doorledger.DeliveryFailed}, v.State) {
		v.State = ""
	}
	var err error
	if v.Subscriptions, err = webhooks.FindWebhookSubscriptions(ctx); err != nil {
		return v, err
	}
	if v.Deliveries, err = webhooks.FindWebhookDeliveries(ctx, doorledger.WebhookDeliveryFilter{State: v.State, Limit: 200}); err != nil {
		return v, err
	}
	return v, nil
}

func (s *Server) renderWebhooks(c echo.Context, status int, v views.WebhooksView) error {
	return render(c, status, views.WebhooksPage(s.page(c, "Outbound events", "webhooks"), v))
}

func (s *Server) handleWebhooks(webhooks doorledger.WebhookService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := webhooksView(c, webhooks)
		if err != nil {
			return err
		}
		return s.renderWebhooks(c, http.StatusOK, v)
	}
}

func (s *Server) handleWebhookCreate(webhooks doorledger.WebhookService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := formOf(c, "name", "url")
		form, err := c.FormParams()
		if err != nil {
			return err
		}
		in := doorledger.WebhookSubscriptionInput{Name: f.Value("name"), URL: f.Value("url"), EventTypes: form["event_type"]}
		f.Values["event_type"] = strings.Join(form["event_type"], ",")
		sub, secret, err := webhooks.CreateWebhookSubscription(c.Request().Context(), in)
		v, verr := webhooksView(c, webhooks)
		if verr != nil {
			return verr
		}
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			v.Form = f
			return s.renderWebhooks(c, formStatus(err), v)
		}
		v.NewSecret = secret
		for _, x := range v.Subscriptions {
			if x.ID == sub.ID {
				v.NewSecretFor = x
			}
		}
		return s.renderWebhooks(c, http.StatusOK, v)
	}
}

// webhookActionError re-renders the page with a refused action's message
// (EINVALID, ECONFLICT), or hands any other error to the error handler.
func (s *Server) webhookActionError(c echo.Context, err error, webhooks doorledger.WebhookService) error {
	switch doorledger.ErrorCode(err) {
	case doorledger.EINVALID, doorledger.ECONFLICT:
	default:
		return err
	}
	v, verr := webhooksView(c, webhooks)
	if verr != nil {
		return verr
	}
	v.Error = doorledger.ErrorMessage(err)
	return s.renderWebhooks(c, formStatus(err), v)
}

func (s *Server) handleWebhookDisable(webhooks doorledger.WebhookService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "subscription")
		if err != nil {
			return err
		}
		if err := webhooks.DisableWebhookSubscription(c.Request().Context(), id); err != nil {
			return s.webhookActionError(c, err, webhooks)
		}
		return s.redirect(c, "/webhooks", "Subscription disabled: no more events are queued for it.")
	}
}

func (s *Server) handleWebhookReplay(webhooks doorledger.WebhookService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "delivery")
		if err != nil {
			return err
		}
		if err := webhooks.ReplayWebhookDelivery(c.Request().Context(), id); err != nil {
			return s.webhookActionError(c, err, webhooks)
		}
		return s.redirect(c, "/webhooks#deliveries", "Queued again: the event goes out with the same event id.")
	}
}
