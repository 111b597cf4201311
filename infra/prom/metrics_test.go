package prom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/infra/prom"
)

func TestRegisterSharesAnExistingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	first, err := prom.Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := prom.Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second.Inc()
	if first != second {
		t.Fatal("the second registration did not return the first collector")
	}
	// Same name, other label set: a real conflict is an error.
	if _, err := prom.Register(reg, prometheus.NewCounterVec(opts, []string{"l"})); err == nil {
		t.Fatal("conflicting registration accepted")
	}
}
