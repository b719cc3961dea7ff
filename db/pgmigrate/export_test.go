package pgmigrate

// Exported for the tests of package pgmigrate_test.
var (
	Plan         = plan
	Convert      = convert
	Unclassified = unclassified
	UserTriggers = userTriggers
	CheckRules   = checkRules
)

type Column = column

func TableNames(ts []table) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return out
}
