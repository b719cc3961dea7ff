package web

import (
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// RateLimit is a per-client allowance: Burst requests at once, then one each
// Every. The zero value means the route's default.
type RateLimit struct {
	Every time.Duration
	Burst int
}

func (r RateLimit) or(def RateLimit) RateLimit {
	if r.Every <= 0 || r.Burst <= 0 {
		return def
	}
	return r
}

// Default limits of the residents' pages, per client address.
var (
	// A resident reads the notice a few times; a crawler walking slugs is held
	// to one guess a second.
	defaultNoticeRate = RateLimit{Every: time.Second, Burst: 60}
	// Reports and subscriptions each cost a mail: a few, then one every ten minutes.
	defaultResidentPostRate = RateLimit{Every: 10 * time.Minute, Burst: 5}
)

// ipLimiter keeps a token bucket (golang.org/x/time/rate) per client address.
// It lives in this process's memory: with several portal instances behind a
// load balancer, each one allows a client its own allowance, so the limit
// per client is the limit times the instances. That bounds abuse well enough
// for pages whose every write is also bounded in the database (open reports
// and unconfirmed subscriptions per building, confirmation mails per address).
type ipLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*ipBucket
}

type ipBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxTrackedClients bounds the map: past it, buckets that have refilled
// (unused for a full burst's time) are forgotten, which changes nothing for
// those clients.
const maxTrackedClients = 10000

func newIPLimiter(r RateLimit) *ipLimiter {
	return &ipLimiter{limit: rate.Every(r.Every), burst: r.Burst, clients: map[string]*ipBucket{}}
}

// allow takes one token for the client, or says how long until one is there.
func (l *ipLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= maxTrackedClients {
			l.forget(now)
		}
		b = &ipBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[client] = b
	}
	b.seen = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	return false, time.Duration((1 - b.lim.TokensAt(now)) / float64(l.limit) * float64(time.Second))
}

func (l *ipLimiter) forget(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	for k, b := range l.clients {
		if now.Sub(b.seen) > full {
			delete(l.clients, k)
		}
	}
	if len(l.clients) >= maxTrackedClients {
		clear(l.clients) // a flood of addresses: start over rather than grow
	}
}

// clientKey is what a client is limited by: its IPv4 address, or the /64 of
// an IPv6 address (one home or phone gets a whole /64 and can pick any
// address in it).
func clientKey(ip string) string {
	parsed := net.ParseIP(ip)
	if parsed == nil || parsed.To4() != nil {
		return ip
	}
	return parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// rateLimit holds each client to the allowance of the route it asks for, if
// the route has one (see public). It runs before any body is read or parsed.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		l := s.rateLimits[c.Request().Method+" "+c.Path()]
		if l == nil {
			return next(c)
		}
		if ok, wait := l.allow(clientKey(c.RealIP()), time.Now()); !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			return doorledger.Errorf(doorledger.ETOOMANY, "Too many requests from your network. Please wait a few minutes and try again.")
		}
		return next(c)
	}
}

// public registers a route anyone may use, without signing in, held per
// client to lim and its body to bodyLimit (0: DefaultBodyLimit).
func (s *Server) public(method, path string, lim *ipLimiter, bodyLimit int64, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	if lim != nil {
		s.rateLimits[method+" "+path] = lim
	}
	if bodyLimit > 0 {
		s.bodyLimits[path] = bodyLimit
	}
	s.echo.Add(method, path, h, mw...)
}
