package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v4"

	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// testParts builds parts as a process does, from flags, against the real
// services and an embedded broker with the log created.
func testParts(t *testing.T, extra ...string) *parts {
	t.Helper()
	pgURL := testsvc.Postgres(t)
	_, redisPfx := testsvc.Redis(t)
	testsvc.Rabbit(t)
	b := kafkatest.Broker(t, "")
	var cfg config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.register(fs)
	args := append([]string{"-broker-addr", b.Addr(), "-postgres-url", pgURL, "-redis-prefix", redisPfx,
		"-rabbit-prefix", fmt.Sprintf("obs%d.", time.Now().UnixNano()), "-http-addr", "127.0.0.1:0",
		"-jwt-secret", "test", "-partitions", "3", "-webhook-secret-key", keyring.NewSpec("obs")}, extra...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := newParts(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	if _, err := ensureTopic(ctx, &cfg, p.log, cfg.brokers()); err != nil {
		t.Fatal(err)
	}
	return p
}

// registered builds every component of every process into one parts, the
// way the subcommands wire them, runs a rebuild (whose gauges appear with
// it), and returns each metric name in the registry with its label names.
func registered(t *testing.T) map[string][]string {
	t.Helper()
	p := testParts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gw, err := buildGateway(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.ln.Close() })
	if _, err := buildProjectors(ctx, p, []string{"postgres", "redis"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := buildReactor(p, false); err != nil {
		t.Fatal(err)
	}
	if _, err := buildWorker(p, nil); err != nil {
		t.Fatal(err)
	}
	if err := rebuild(ctx, p, "redis", io.Discard, false, false); err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc)
	go func() { p.reg.Describe(descs); close(descs) }()
	out := map[string][]string{}
	for d := range descs {
		name, labels := parseDesc(t, d.String())
		out[name] = append(out[name], labels...)
	}
	return out
}

var (
	descRE   = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)
	constRE  = regexp.MustCompile(`(\w+)="`)
	selectRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}`)
	matchRE  = regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)\s*"`)
	groupRE  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	identRE  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	stringRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	rangeRE  = regexp.MustCompile(`\[[^\]]*\]|\$\w+|\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`)
)

func parseDesc(t *testing.T, s string) (string, []string) {
	t.Helper()
	m := descRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("unexpected descriptor %s", s)
	}
	var labels []string
	for _, c := range constRE.FindAllStringSubmatch(m[2], -1) {
		labels = append(labels, c[1])
	}
	for _, v := range strings.Split(m[3], ",") {
		if v = strings.TrimSuffix(strings.TrimPrefix(v, "c("), ")"); v != "" {
			labels = append(labels, v)
		}
	}
	return m[1], labels
}

// promqlWords are the grammar's words that are not metric names.
var promqlWords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}

// checkExpr reports every metric of expr that the registry lacks, and every
// label it matches or groups on that none of its metrics has. Scrape-time
// metrics of Prometheus (up) and the blackbox exporter (probe_*) are not
// rtstack's.
func checkExpr(have map[string][]string, expr string) []string {
	var problems, names []string
	var usedLabels []string
	for _, sel := range selectRE.FindAllStringSubmatch(expr, -1) {
		for _, m := range matchRE.FindAllStringSubmatch(sel[2], -1) {
			usedLabels = append(usedLabels, m[1])
		}
	}
	rest := selectRE.ReplaceAllString(expr, "$1 ")
	for _, g := range groupRE.FindAllStringSubmatch(rest, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				usedLabels = append(usedLabels, l)
			}
		}
	}
	rest = groupRE.ReplaceAllString(rest, " ")
	rest = rangeRE.ReplaceAllString(stringRE.ReplaceAllString(rest, " "), " ")
	for _, id := range identRE.FindAllStringSubmatch(rest, -1) {
		if id[1] != "" || slices.Contains(promqlWords, id[0]) { // a function call or a keyword
			continue
		}
		names = append(names, id[0])
	}
	if len(names) == 0 {
		problems = append(problems, fmt.Sprintf("%q names no metric", expr))
	}
	labels := map[string]bool{"job": true, "instance": true} // added by the scrape
	for _, n := range names {
		if n == "up" || strings.HasPrefix(n, "probe_") {
			continue
		}
		base := n
		if _, ok := have[base]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if _, ok := have[strings.TrimSuffix(n, suffix)]; ok && strings.HasSuffix(n, suffix) {
					base = strings.TrimSuffix(n, suffix)
					labels["le"] = labels["le"] || suffix == "_bucket"
				}
			}
		}
		ls, ok := have[base]
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %s does not exist", n))
		}
		for _, l := range ls {
			labels[l] = true
		}
	}
	for _, l := range usedLabels {
		if !labels[l] {
			problems = append(problems, fmt.Sprintf("label %s is on none of %v", l, names))
		}
	}
	return problems
}

// Every metric the alert rules and the dashboard use exists in the
// registry the processes build, with the labels they select on.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	have := registered(t)
	for _, must := range []string{"rtstack_gateway_append_seconds", "rtstack_projection_lag_records", "go_goroutines"} {
		if _, ok := have[must]; !ok {
			t.Fatalf("the registry lacks %s: the components were not built", must)
		}
	}
	// The checker itself rejects what it should.
	for _, bad := range []string{`rate(rtstack_no_such_total[5m])`, `sum by (user) (rtstack_gateway_connections)`, `rtstack_gateway_drops_total{room="x"}`} {
		if len(checkExpr(have, bad)) == 0 {
			t.Fatalf("checkExpr accepted %s", bad)
		}
	}

	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	b, err := os.ReadFile("../../infra/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q of %s lacks a name, a severity or a summary", r.Alert, g.Name)
			}
			for _, p := range checkExpr(have, r.Expr) {
				t.Errorf("alert %s: %s", r.Alert, p)
			}
		}
	}

	b, err = os.ReadFile("../../infra/grafana/dashboards/rtstack.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	exprs := 0
	for _, p := range dash.allPanels() {
		for _, tg := range p.Targets {
			exprs++
			if tg.Datasource.UID != "prometheus" {
				t.Errorf("panel %q queries datasource %q, not the provisioned prometheus", p.Title, tg.Datasource.UID)
			}
			for _, problem := range checkExpr(have, tg.Expr) {
				t.Errorf("panel %q: %s", p.Title, problem)
			}
		}
	}
	for _, v := range dash.Templating.List {
		m := regexp.MustCompile(`^label_values\((\w+), (\w+)\)$`).FindStringSubmatch(v.Definition)
		if m == nil || !slices.Contains(have[m[1]], m[2]) && m[2] != "instance" {
			t.Errorf("variable %s: %q is not label_values of a metric's label", v.Name, v.Definition)
		}
	}
	if alerts < 10 || exprs < 20 {
		t.Errorf("%d alerts and %d dashboard queries checked: the files were not read", alerts, exprs)
	}
}

type dashboard struct {
	Panels     []panel
	Templating struct {
		List []struct{ Name, Definition string }
	}
}

type panel struct {
	Title   string
	Panels  []panel // of a collapsed row
	Targets []struct {
		Expr       string
		Datasource struct{ UID string }
	}
}

func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// project, react and work serve /metrics (OpenMetrics when asked),
// /healthz and /readyz, which fails while a service they need is down.
func TestOpsEndpoints(t *testing.T) {
	p := testParts(t, "-rabbit-url", "amqp://guest:guest@127.0.0.1:1/")
	ok, err := opsHandler(p, []string{"postgres", "redis", "kafka"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(h http.Handler, path, accept string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if rec := get(ok, path, ""); rec.Code != http.StatusOK {
			t.Errorf("%s: HTTP %d %s", path, rec.Code, rec.Body)
		}
	}
	rec := get(ok, "/metrics", "application/openmetrics-text;version=1.0.0")
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || !strings.HasPrefix(ct, "application/openmetrics-text") ||
		!strings.Contains(rec.Body.String(), "go_goroutines") || !strings.HasSuffix(rec.Body.String(), "# EOF\n") {
		t.Errorf("OpenMetrics scrape: HTTP %d, %s", rec.Code, ct)
	}
	if ct := get(ok, "/metrics", "").Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("plain scrape answered %s", ct)
	}

	down, err := opsHandler(p, []string{"rabbitmq", "kafka"})
	if err != nil {
		t.Fatal(err)
	}
	rec = get(down, "/readyz", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "RabbitMQ") {
		t.Errorf("readyz with RabbitMQ unreachable: HTTP %d %s", rec.Code, rec.Body)
	}
	if rec := get(down, "/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("healthz (alive, not ready): HTTP %d", rec.Code)
	}
	if rec := get(down, "/api/leaderboard", ""); rec.Code != http.StatusNotFound {
		t.Errorf("the ops server routes /api: HTTP %d", rec.Code)
	}
}

// `rtstack work` with METRICS_ADDR serves its queue gauges and readiness,
// and stops cleanly on SIGTERM.
func TestWorkServesMetricsOnMetricsAddr(t *testing.T) {
	d := newDevEnv(t)
	addr := testsvc.FreeAddr(t)
	p := start(t, append(d.env, "METRICS_ADDR="+addr, "WEBHOOK_SECRET_KEY="+keyring.NewSpec("obs")), "work")
	base := "http://" + addr
	body := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testsvc.Eventually(t, 30*time.Second, "the worker's /readyz", func() bool {
		code, _ := body("/readyz")
		return code == http.StatusOK
	})
	// The worker declared its queues and consumes the main one.
	testsvc.Eventually(t, 30*time.Second, "queue gauges with the worker consuming", func() bool {
		_, m := body("/metrics")
		return strings.Contains(m, `rtstack_rabbit_queue_consumers{component="worker",queue="tasks"} 1`) &&
			strings.Contains(m, `rtstack_rabbit_queue_messages{component="worker",queue="tasks.dead"} 0`)
	})
	p.stop(t, syscall.SIGTERM)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("work exited %d on SIGTERM:\n%s", code, p.stderr)
	}
}
