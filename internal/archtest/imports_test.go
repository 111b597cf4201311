package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/rtstack/rtstack/"

// forbidden lists, per role (a package path prefix inside the module), the
// roles it must not import. events is stricter still: standard library only.
var forbidden = map[string][]string{
	"schemas":     {"commands", "gateway", "projections", "tasks", "infra", "cmd"},
	"commands":    {"schemas", "gateway", "projections", "tasks", "infra", "cmd"},
	"projections": {"commands", "gateway", "tasks", "cmd"},
	"tasks":       {"gateway", "projections", "cmd"},
	"gateway":     {"tasks", "projections/", "cmd"}, // the read types in projections are allowed, the stores are not
	"infra":       {"commands", "gateway", "projections", "tasks", "cmd"},
	"web":         {"commands", "gateway", "projections", "tasks", "infra", "cmd"},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "github.com/rtstack/rtstack/...")
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

func role(path string) string {
	rel, ok := strings.CutPrefix(path, module)
	if !ok {
		return ""
	}
	return rel
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := role(p.ImportPath)
		for _, imp := range p.Imports {
			irel := role(imp)
			if rel == "events" || strings.HasPrefix(rel, "events/") {
				if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
					t.Errorf("%s imports %s: events may import only the standard library", p.ImportPath, imp)
				}
				continue
			}
			if irel == "" || strings.HasPrefix(irel, "internal/") {
				continue
			}
			for r, bans := range forbidden {
				if rel != r && !strings.HasPrefix(rel, r+"/") {
					continue
				}
				for _, ban := range bans {
					if irel == strings.TrimSuffix(ban, "/") && strings.HasSuffix(ban, "/") {
						continue // the role's root package itself is allowed
					}
					if irel == ban || strings.HasPrefix(irel, strings.TrimSuffix(ban, "/")+"/") {
						t.Errorf("%s imports %s: %s must not depend on %s", p.ImportPath, imp, r, ban)
					}
				}
			}
		}
	}
}
