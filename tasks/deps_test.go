package tasks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps tasks off the gateway and the projections:
// imports point inward (cmd → gateway, projections, tasks → commands,
// schemas → events).
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/rtstack/rtstack/tasks/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"/gateway", "/projections", "/cmd/"} {
			if strings.HasPrefix(pkg, "github.com/rtstack/rtstack") && strings.Contains(pkg, banned) {
				t.Errorf("tasks depends on %s", pkg)
			}
		}
	}
}
