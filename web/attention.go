package web

import (
	"context"
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// The attention list is the first screen after sign-in for
// managers, admins and boards; installers are sent to their buildings.

// attentionOptions bounds the page: the buildings with the most first, five
// items of each kind per building; the counts are always whole.
var attentionOptions = doorledger.AttentionOptions{MaxBuildings: 50, ItemsPerKind: 5}

// attentionStreamGap is the least time between two reads of the attention
// stream: every device report wakes it (DevicesKey), and the list is a
// summary, so a second is soon enough (docs/benchmarks.md: one read of the
// whole 1,000-building portfolio).
const attentionStreamGap = time.Second

func (s *Server) attentionView(ctx context.Context, attention doorledger.AttentionService) (views.AttentionView, error) {
	a, err := attention.Attention(ctx, attentionOptions)
	if err != nil {
		return views.AttentionView{}, err
	}
	return views.AttentionView{Attention: a, CanManage: doorledger.CanManage(doorledger.UserFromContext(ctx)), BrokerDown: s.brokerDown()}, nil
}

// handleHome is the first screen: the attention list, or an installer's buildings.
func (s *Server) handleHome(attention doorledger.AttentionService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if u := doorledger.UserFromContext(c.Request().Context()); u.Role == doorledger.RoleInstaller {
			return c.Redirect(http.StatusSeeOther, "/buildings")
		}
		v, err := s.attentionView(c.Request().Context(), attention)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.AttentionPage(s.page(c, "What needs attention", "attention"), v))
	}
}

// handleAttentionEvents keeps the attention list live.
func (s *Server) handleAttentionEvents(attention doorledger.AttentionService, users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		return s.streamEvery(c, users, "attention", []string{DevicesKey}, attentionStreamGap, func(ctx context.Context) (templ.Component, bool, error) {
			v, err := s.attentionView(ctx, attention)
			if err != nil {
				return nil, true, err
			}
			return views.AttentionList(v), false, nil
		})
	}
}
