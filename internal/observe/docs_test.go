package observe

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedNames returns the name of every metric the package exports,
// from the descriptions of its collectors and metrics.
func exportedNames(t *testing.T) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		defer close(ch)
		(&collector{d: newStageDescs(nil)}).Describe(ch)
		newNATSCollector().Describe(ch)
		m := newMetrics(prometheus.NewRegistry(), nil)
		for _, c := range []prometheus.Collector{m.retries, m.processing, m.batchSize, m.sinkWrite, m.endToEnd, m.lag} {
			c.Describe(ch)
		}
	}()
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("only %d metrics described: %v", len(names), names)
	}
	return names
}

// TestMetricsDocumented: every metric the package exports is in the
// metric table of docs/operations.md.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range exportedNames(t) {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("metric %s is not in docs/operations.md", name)
		}
	}
}

// TestGrafanaDashboard: docs/grafana-dashboard.json is valid JSON whose
// queries use only metrics the package exports (a histogram's _bucket,
// _sum and _count included), and every panel has a query.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	names := exportedNames(t)
	re := regexp.MustCompile(`\bsluice_[a-z_]+\b`)
	used := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range re.FindAllString(tg.Expr, -1) {
				used++
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(names, b) {
						base = b
					}
				}
				if !slices.Contains(names, base) {
					t.Errorf("panel %q uses %s, which sluice does not export", p.Title, m)
				}
			}
		}
	}
	if dash.Title == "" || used == 0 {
		t.Errorf("dashboard %q uses %d sluice metrics", dash.Title, used)
	}
}
