package doorledger

import "context"

type contextKey int

const (
	userContextKey contextKey = iota + 1
	ipContextKey
	systemContextKey
)

// NewContextWithUser returns a context carrying the signed-in user.
func NewContextWithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userContextKey, u)
}

// UserFromContext returns the signed-in user, or nil.
func UserFromContext(ctx context.Context) *User {
	u, _ := ctx.Value(userContextKey).(*User)
	return u
}

// NewContextWithIP records the client address for the audit journal.
func NewContextWithIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipContextKey, ip)
}

// IPFromContext returns the client address, or "".
func IPFromContext(ctx context.Context) string {
	s, _ := ctx.Value(ipContextKey).(string)
	return s
}

// NewSystemContext marks work done by the portal itself (start-up, operators'
// CLI, background jobs), which acts with an admin's reach and audits as "system".
func NewSystemContext(ctx context.Context, label string) context.Context {
	return context.WithValue(ctx, systemContextKey, label)
}

// SystemFromContext returns the system label, or "" for a person's request.
func SystemFromContext(ctx context.Context) string {
	s, _ := ctx.Value(systemContextKey).(string)
	return s
}
