package archtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/rtstack/rtstack"

// rule is one package doc's statement about what a package may import,
// made mechanical. pkg is a module-relative import path; "x/..." means x
// and every package under it.
type rule struct {
	pkg string
	// only, when non-nil, lists the module packages pkg may import directly
	// (any others are a violation). Every entry must be named in pkg's doc.
	only []string
	// never lists module packages ("x/..." patterns) pkg must not depend
	// on, directly or through another package.
	never []string
	// external, when non-nil, lists the only import path prefixes outside
	// the standard library and the module that pkg may import; empty means
	// the standard library only.
	external []string
}

var roles = []string{"cmd/...", "commands/...", "events/...", "gateway/...", "infra/...", "projections/...", "schemas/...", "tasks/...", "web/..."}

// rules holds, per package, what its doc.go (or package comment) says,
// and per role the import direction of docs/architecture.md: cmd →
// gateway, projections, tasks → commands, schemas → events, with infra as
// shared technology.
var rules = []rule{
	// events: "imports nothing outside the standard library".
	{pkg: "events/...", only: []string{}, external: []string{}},

	// commands: "imports events, internal/egress, internal/retry and the
	// Unicode libraries".
	{pkg: "commands", only: []string{"events", "internal/egress", "internal/retry"},
		external: []string{"github.com/forPelevin/gomoji", "github.com/rivo/uniseg"}},
	{pkg: "commands/...", never: without(roles, "commands/...", "events/...")},

	// schemas: "imports events and the Avro library; never projections,
	// gateway or infra".
	{pkg: "schemas", only: []string{"events"}},
	{pkg: "schemas/...", never: without(roles, "schemas/...", "events/...")},

	// infra: "imports events and schemas only; domain packages never import
	// infra" (the domain rules above say so for events, commands, schemas).
	{pkg: "infra", only: []string{}},
	{pkg: "infra/...", never: without(roles, "infra/...", "events/...", "schemas/...")},
	{pkg: "infra/kafka", only: []string{"events", "schemas", "infra/telemetry"}},
	{pkg: "infra/telemetry", only: []string{}},
	// infra/prom (package comment): "imports only the Prometheus client".
	{pkg: "infra/prom", only: []string{}, external: []string{"github.com/prometheus/client_golang"}},

	// projections: "imports events, schemas (to decode), infra/kafka and
	// infra/prom; never gateway, commands or tasks".
	{pkg: "projections", only: []string{"events", "schemas", "infra/kafka", "infra/prom", "infra/telemetry", "internal/retry"}},
	{pkg: "projections/...", never: []string{"gateway/...", "commands/...", "tasks/...", "cmd/..."}},
	// projections/view: "imports only the standard library (events at most)".
	{pkg: "projections/view", only: []string{"events"}, external: []string{}},
	// The stores: "never gateway, commands, tasks or another projection".
	{pkg: "projections/postgres", only: []string{"events", "projections", "projections/view"}, never: []string{"projections/redis/..."}},
	{pkg: "projections/redis", only: []string{"events", "projections", "projections/view"}, never: []string{"projections/postgres/..."}},

	// gateway: "imports commands, events, schemas, infra/kafka,
	// projections/view, gateway/clienterr and gateway/auth. It must not
	// import gateway/presence, gateway/api, the projection adapters or
	// anything under cmd/".
	{pkg: "gateway", only: []string{"commands", "events", "schemas", "infra/kafka", "infra/telemetry", "projections/view", "gateway/clienterr", "gateway/auth", "internal/retry"},
		never: []string{"gateway/presence/...", "gateway/api/...", "gateway/dedupe/...", "projections", "projections/postgres/...", "projections/redis/...", "cmd/..."}},
	{pkg: "gateway/...", never: []string{"projections", "projections/postgres/...", "projections/redis/...", "tasks/...", "cmd/..."}},
	// gateway/api: "imports commands, projections/view, events,
	// gateway/clienterr and gateway/auth; never projections, its adapters,
	// infra or the gateway package".
	{pkg: "gateway/api", only: []string{"commands", "projections/view", "events", "gateway/clienterr", "gateway/auth"},
		never: []string{"infra/...", "gateway"}},
	// gateway/clienterr (package comment): "imports commands, gateway/auth
	// and projections/view for the errors it maps, never gateway or
	// gateway/api".
	{pkg: "gateway/clienterr", only: []string{"commands", "gateway/auth", "projections/view"}, never: []string{"gateway", "gateway/api/..."}},
	// gateway/dedupe: "imports commands, events and go-redis; never
	// projections or the gateway package".
	{pkg: "gateway/dedupe", only: []string{"commands", "events"}, never: []string{"projections/...", "gateway"}},
	// gateway/loadgen: "imports no other rtstack package".
	{pkg: "gateway/loadgen", only: []string{}},
	// gateway/presence: "imports go-redis, the Prometheus client and the
	// standard library only: never commands, projections or the gateway
	// package".
	{pkg: "gateway/presence", only: []string{},
		external: []string{"github.com/redis/go-redis", "github.com/prometheus/client_golang"}},

	// tasks: "imports events only; ... Nothing here imports commands,
	// gateway or projections".
	{pkg: "tasks", only: []string{"events"}},
	{pkg: "tasks/...", never: []string{"commands/...", "gateway/...", "projections/...", "cmd/..."}},
	// tasks/rabbit: "imports tasks and amqp091-go; never the reactor, the
	// worker, gateway or projections".
	{pkg: "tasks/rabbit", only: []string{"tasks"}, never: []string{"tasks/reactor/...", "tasks/worker/..."}},
	// tasks/reactor: "imports events, schemas, infra/kafka, infra/prom,
	// infra/telemetry, internal/keyring, tasks, tasks/rabbit and internal/retry; never
	// gateway, projections or the worker".
	{pkg: "tasks/reactor", only: []string{"events", "schemas", "infra/kafka", "infra/prom", "infra/telemetry", "internal/keyring", "tasks", "tasks/rabbit", "internal/retry"},
		never: []string{"tasks/worker/..."}},
	// tasks/worker: "imports tasks, tasks/rabbit, infra/prom, infra/telemetry, internal/retry,
	// internal/egress and internal/keyring; never commands, gateway or
	// projections".
	{pkg: "tasks/worker", only: []string{"tasks", "tasks/rabbit", "infra/prom", "infra/telemetry", "internal/egress", "internal/retry", "internal/keyring"},
		never: []string{"tasks/reactor/..."}},

	// internal/egress: "imports only the standard library".
	{pkg: "internal/egress", only: []string{}, external: []string{}},
	// internal/keyring: "imports only the standard library".
	{pkg: "internal/keyring", only: []string{}, external: []string{}},
	// internal/retry: "imports only the standard library".
	{pkg: "internal/retry", only: []string{}, external: []string{}},
	// internal/archtest has no code of its own.
	{pkg: "internal/archtest", only: []string{}, external: []string{}},

	// web: "imports only the standard library".
	{pkg: "web", only: []string{}, external: []string{}},
}

// without returns the patterns of list other than drop.
func without(list []string, drop ...string) []string {
	var out []string
	for _, p := range list {
		if !slices.Contains(drop, p) {
			out = append(out, p)
		}
	}
	return out
}

type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// rel returns path relative to the module, and whether it is in it.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// matches reports whether the module-relative path p matches pattern.
func matches(pattern, p string) bool {
	if root, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == root || strings.HasPrefix(p, root+"/")
	}
	return p == pattern
}

func isStandard(path string) bool { return !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") }

// violations returns what p breaks of r.
func (r rule) violations(p pkg) []string {
	var out []string
	for _, imp := range p.Imports {
		if mr, ok := rel(imp); ok {
			if r.only != nil && !slices.Contains(r.only, mr) {
				out = append(out, "imports "+mr+", not in its list "+strings.Join(r.only, ", "))
			}
			continue
		}
		if r.external != nil && !isStandard(imp) && !slices.ContainsFunc(r.external, func(pre string) bool { return strings.HasPrefix(imp, pre) }) {
			out = append(out, "imports "+imp+" (outside the standard library and its list)")
		}
	}
	for _, dep := range p.Deps {
		mr, ok := rel(dep)
		if !ok {
			continue
		}
		for _, ban := range r.never {
			if matches(ban, mr) {
				how := "through another package"
				if slices.Contains(p.Imports, dep) {
					how = "directly"
				}
				out = append(out, "depends on "+mr+" ("+how+"), banned by "+ban)
			}
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		pr, _ := rel(p.ImportPath)
		for _, r := range rules {
			if !matches(r.pkg, pr) {
				continue
			}
			for _, v := range r.violations(p) {
				t.Errorf("%s %s (rule for %s)", pr, v, r.pkg)
			}
		}
	}
}

// TestEveryPackageDocHasItsRule keeps the table and the docs together: a
// package with a doc.go needs its own rule, and every package a rule allows
// is named in that package's doc, so an import added to one is added to
// the other.
func TestEveryPackageDocHasItsRule(t *testing.T) {
	for _, p := range listPackages(t) {
		pr, _ := rel(p.ImportPath)
		doc, err := os.ReadFile(filepath.Join(p.Dir, "doc.go"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rules, func(r rule) bool { return r.pkg == pr || r.pkg == pr+"/..." })
		if i < 0 {
			t.Errorf("%s has a doc.go but no rule of its own in the import table", pr)
			continue
		}
		for _, allowed := range rules[i].only {
			if !bytes.Contains(doc, []byte(allowed)) {
				t.Errorf("%s may import %s, which its doc.go does not name", pr, allowed)
			}
		}
	}
}

func TestRulesMatchPackages(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range rules {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { pr, _ := rel(p.ImportPath); return matches(r.pkg, pr) }) {
			t.Errorf("rule for %s matches no package: renamed or removed?", r.pkg)
		}
	}
}
