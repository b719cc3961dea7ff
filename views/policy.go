package views

import (
	"github.com/doorledger/doorledger"
)

// PolicyView is a building's consent policy form (managers).
type PolicyView struct {
	Building *doorledger.Building
	Policy   *doorledger.ConsentPolicy // in force
	Titles   []string                  // the distinct titles of the active roster: the roles to choose from
	Form     Form
	Roles    map[string]bool // the roles ticked
}
