package views

import "github.com/doorledger/doorledger"

// WebhooksView is the admin page of outbound events: subscriptions, the form
// to add one, and deliveries with the receivers' answers.
type WebhooksView struct {
	Subscriptions []*doorledger.WebhookSubscription
	Deliveries    []*doorledger.WebhookDelivery
	State         string // the deliveries shown: a doorledger.Delivery… state, "" for all
	Form          Form   // the new subscription's form
	Error         string // a refused action, shown at the top
	NewSecret     string // a secret just made: shown once, never stored in clear
	NewSecretFor  *doorledger.WebhookSubscription
}

// deliveryStates are the filters offered above the deliveries.
var deliveryStates = []string{"", doorledger.DeliveryPending, doorledger.DeliveryRetrying, doorledger.DeliveryDelivered, doorledger.DeliveryFailed}

// deliveryStateLabel names a filter.
func deliveryStateLabel(state string) string {
	if state == "" {
		return "all"
	}
	return state
}

// deliveriesHref is the page showing deliveries in state.
func deliveriesHref(state string) string {
	if state == "" {
		return "/webhooks#deliveries"
	}
	return "/webhooks?state=" + state + "#deliveries"
}
