package metrics_test

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/metrics"
)

const rulesFile = "../docs/prometheus/doorledger-rules.yml"

// The alert rules docs/operations.md recommends pass promtool, and every
// doorledger_ metric they name is one the portal exports (a renamed metric
// would leave an alert that never fires).
func TestAlertRules(t *testing.T) {
	promtool := testtool.Require(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc, 100)
	go func() {
		metrics.New(metrics.Sources{}).Describe(ch)
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	suffix := regexp.MustCompile(`_(bucket|count|sum)$`)
	for _, name := range regexp.MustCompile(`\bdoorledger_[a-z_]+`).FindAllString(string(rules), -1) {
		if !exported[name] && !exported[suffix.ReplaceAllString(name, "")] {
			t.Errorf("the rules name %s, which the portal does not export", name)
		}
	}
}
