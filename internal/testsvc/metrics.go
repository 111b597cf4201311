package testsvc

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Sum adds the counter and gauge samples of metric name in g whose labels
// include every pair of labels ("reason", "misplaced", …); 0 when none.
func Sum(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	sample:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue sample
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() // one of them is set
		}
	}
	return sum
}
