package reports

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// deviceLabel names a device for a table or a heading.
func (p *auditPrinter) deviceLabel(id int64, ref string) string {
	if id == 0 {
		return "Unregistered device calling itself “" + oneLine(ref) + "”"
	}
	if d := p.a.devices[id]; d != nil {
		return deviceName(d)
	}
	return fmt.Sprintf("#%d (not in the inventory)", id)
}

func deviceName(d *doorledger.Device) string {
	return fmt.Sprintf("#%d %s %s · %s", d.ID, d.Vendor, d.Model, d.Serial)
}

// when formats t in the building's time zone, labelled with its abbreviation.
func (p *auditPrinter) when(t time.Time) string { return p.whenOr(t, "not recorded") }

func (p *auditPrinter) whenOr(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.In(p.loc).Format("2006-01-02 15:04:05 MST")
}

func (p *auditPrinter) date(t time.Time) string {
	if t.IsZero() {
		return "not recorded"
	}
	return t.In(p.loc).Format("2006-01-02")
}

func (p *auditPrinter) bucketLabel(i int) string {
	from := p.a.start.AddDate(0, 0, i*p.a.bucketDays)
	if p.a.bucketDays == 1 {
		return from.Format("2006-01-02")
	}
	to := from.AddDate(0, 0, p.a.bucketDays-1)
	if last := p.a.end.AddDate(0, 0, -1); to.After(last) {
		to = last
	}
	return from.Format("2006-01-02") + " to " + to.Format("2006-01-02")
}

func bucketName(days int) string {
	switch days {
	case 1:
		return "day"
	case 7:
		return "week"
	}
	return strconv.Itoa(days/7) + " weeks"
}

func kinds(m map[string]int) []string {
	var ks []string
	for _, k := range doorledger.AnomalyKinds {
		if m[k] > 0 {
			ks = append(ks, k)
		}
	}
	var other []string
	for k := range m {
		if !slices.Contains(doorledger.AnomalyKinds, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	return append(ks, other...)
}

func kindLabel(k string) string { return strings.ReplaceAll(oneLine(k), "_", " ") }

func anomalyMeaning(k string) string {
	if d := doorledger.AnomalyDescription(k); d != "" {
		return d
	}
	return "carries a flag this version of Doorledger does not describe"
}

func verb(s doorledger.DeviceState) string {
	switch s {
	case doorledger.StateEnabled:
		return "enable"
	case doorledger.StateDisabled:
		return "disable"
	}
	return oneLine(string(s))
}

func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// number formats n with thousands separators: 100,000.
func number(n int) string { return number64(int64(n)) }

func number64(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return number(n) + " " + many
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func parens(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return "(" + s + ")"
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
