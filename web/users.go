package web

import (
	"fmt"
	"net/http"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

func pathf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func (s *Server) handleUsers(users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := users.FindUsers(c.Request().Context())
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.UsersPage(s.page(c, "Users", "users"), list))
	}
}

func (s *Server) handleUserNew(c echo.Context) error {
	return render(c, http.StatusOK, views.UserNewPage(s.page(c, "New user", "users"), views.Form{}))
}

func (s *Server) handleUserCreate(users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := formOf(c, "name", "email", "role", "company")
		u, err := users.CreateUser(c.Request().Context(), doorledger.NewUser{
			Name: f.Value("name"), Email: f.Value("email"), Role: doorledger.Role(f.Value("role")),
			Company: f.Value("company"), Password: c.FormValue("password"),
		})
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return render(c, formStatus(err), views.UserNewPage(s.page(c, "New user", "users"), f))
		}
		return s.redirect(c, "/users", fmt.Sprintf("Account created for %s. Grant access on a building page.", u.Email))
	}
}

func userForm(u *doorledger.User) views.Form {
	f := views.Form{Values: map[string]string{"name": u.Name, "role": string(u.Role), "company": u.Company}}
	if u.Disabled {
		f.Values["disabled"] = "1"
	}
	return f
}

func (s *Server) handleUser(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "user")
		if err != nil {
			return err
		}
		u, err := users.FindUserByID(c.Request().Context(), id)
		if err != nil {
			return err
		}
		return s.renderUserEdit(c, factors, http.StatusOK, u, userForm(u), views.Form{})
	}
}

func (s *Server) handleUserUpdate(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "user")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		u, err := users.FindUserByID(ctx, id)
		if err != nil {
			return err
		}
		f := formOf(c, "name", "role", "company", "disabled")
		name, role, company, disabled := f.Value("name"), doorledger.Role(f.Value("role")), f.Value("company"), f.Value("disabled") == "1"
		if _, err := users.UpdateUser(ctx, id, doorledger.UserUpdate{Name: &name, Role: &role, Company: &company, Disabled: &disabled}); err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.renderUserEdit(c, factors, formStatus(err), u, f, views.Form{})
		}
		return s.redirect(c, "/users", "Account saved.")
	}
}

func (s *Server) handleUserPassword(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "user")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		u, err := users.FindUserByID(ctx, id)
		if err != nil {
			return err
		}
		if err := users.SetPassword(ctx, id, "", c.FormValue("password")); err != nil {
			pw := views.Form{}
			if !formError(&pw, err) {
				return err
			}
			return s.renderUserEdit(c, factors, formStatus(err), u, userForm(u), pw)
		}
		if me := doorledger.UserFromContext(ctx); me.ID == id {
			return s.signOut(c, "Your password is changed. Sign in with the new password.")
		}
		return s.redirect(c, "/users", fmt.Sprintf("Password set for %s; their sessions have ended.", u.Email))
	}
}
