package deploy_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/port-azure-relay/relay"

// standIn reports whether a package of the module is a stand-in or the local runtime:
// every one is named <thing>test, as net/http/httptest is.
func standIn(pkg string) bool {
	return strings.HasPrefix(pkg, module+"/") && strings.HasSuffix(path.Base(pkg), "test")
}

// TestNoFunctionLinksAStandIn: what a function's binary is built from (go list -deps, as
// `make build` builds it) holds no stand-in, no local runtime, nothing of e2e or cmd.
func TestNoFunctionLinksAStandIn(t *testing.T) {
	for _, fn := range []string{"relay", "verifier", "status", "hookcheck"} {
		t.Run(fn, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", "./functions/"+fn)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./functions/%s: %v", fn, err)
			}
			ours := 0
			for _, pkg := range strings.Fields(string(out)) {
				if !strings.HasPrefix(pkg, module+"/") {
					continue
				}
				ours++
				rel := strings.TrimPrefix(pkg, module+"/")
				if standIn(pkg) || strings.HasPrefix(rel, "e2e") || strings.HasPrefix(rel, "cmd/") {
					t.Errorf("functions/%s links %s, which is not production code", fn, rel)
				}
			}
			if ours < 3 {
				t.Fatalf("functions/%s links %d packages of the module: go list did not list what it builds", fn, ours)
			}
		})
	}
}

// TestEachFunctionLinksWhatItUses: a function's binary holds the packages it calls and
// no other of the module's: the verifier no Azure, Entra, ledger, Port or relay code,
// the status function no Azure, Entra, ledger or relay code, the hook check no Port,
// ledger or relay code.
func TestEachFunctionLinksWhatItUses(t *testing.T) {
	for fn, never := range map[string][]string{
		"verifier":  {"shared/azdo", "shared/entra", "shared/ledger", "shared/portapi", "shared/relay", "shared/runstatus", "shared/payload"},
		"status":    {"shared/azdo", "shared/entra", "shared/ledger", "shared/relay", "shared/receiver", "shared/payload"},
		"relay":     {"shared/runstatus", "shared/receiver", "shared/wiring"},
		"hookcheck": {"shared/relay", "shared/runstatus", "shared/receiver", "shared/portapi", "shared/ledger", "shared/payload"},
	} {
		cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", "./functions/"+fn)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./functions/%s: %v", fn, err)
		}
		deps := strings.Fields(string(out))
		for _, pkg := range never {
			if slices.Contains(deps, module+"/"+pkg) {
				t.Errorf("functions/%s links %s, which it never calls", fn, pkg)
			}
		}
	}
}

// TestStandInsStandBesideWhatTheyStandInFor: under shared/, a stand-in is never flat among
// the production packages: each is in the folder of the package that talks to the real
// service (shared/azdo/azdotest beside shared/azdo), and only there.
func TestStandInsStandBesideWhatTheyStandInFor(t *testing.T) {
	cmd := exec.Command("go", "list", "./shared/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./shared/...: %v", err)
	}
	var standIns []string
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(pkg, module+"/")
		if !standIn(pkg) {
			continue
		}
		standIns = append(standIns, rel)
		parent := path.Dir(rel)
		if parent == "shared" && rel != "shared/awstest" { // AWS's common wire, which every AWS stand-in speaks
			t.Errorf("%s stands flat among the production packages: move it beside what it stands in for", rel)
		} else if standIn(module + "/" + parent) {
			t.Errorf("%s stands inside another stand-in, %s", rel, parent)
		}
	}
	if len(standIns) < 5 {
		t.Errorf("found %d stand-ins (%q), want at least Azure DevOps', Port's, Secrets Manager's, the service hooks' and the local runtime", len(standIns), standIns)
	}
}

// TestTopLevelHoldsWhatTheDesignNames: the repository's top level holds the folders and
// files the design fixes, and the few a project needs besides; anything else belongs in
// one of them.
func TestTopLevelHoldsWhatTheDesignNames(t *testing.T) {
	allowed := []string{
		"functions", "shared", "template.yaml", "samconfig.toml", "events", "Makefile", "go.mod", "go.sum", // the design's
		"README.md", "docs", "cmd", "e2e", ".ci", // what a project needs
		".git", ".gitignore", // git's
		".tools", "bin", ".aws-sam", // made by make and sam, ignored by git
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(allowed, e.Name()) {
			t.Errorf("the top level holds %s, which the design does not name", e.Name())
		}
	}
}

// TestStandInsAreSmallerThanTheProduct: the stand-ins and the local runtime, all told,
// are sized to what the product uses of each service: fewer lines than the production
// code they serve.
func TestStandInsAreSmallerThanTheProduct(t *testing.T) {
	count := func(standIns bool) int {
		n := 0
		_ = filepath.WalkDir(filepath.Join(root, "shared"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.Contains(p, "/testdata/") {
				return err
			}
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			if standIn(module+"/"+filepath.ToSlash(rel)) == standIns {
				b, _ := os.ReadFile(p)
				n += bytes.Count(b, []byte("\n"))
			}
			return nil
		})
		return n
	}
	product, standIns := count(false), count(true)
	if fns, _ := filepath.Glob(filepath.Join(root, "functions", "*", "*.go")); len(fns) > 0 {
		for _, f := range fns {
			if !strings.HasSuffix(f, "_test.go") {
				b, _ := os.ReadFile(f)
				product += bytes.Count(b, []byte("\n"))
			}
		}
	}
	t.Logf("stand-ins %d lines, product %d", standIns, product)
	if standIns >= product || product < 1000 {
		t.Errorf("the stand-ins are %d lines against the product's %d: size each to what the product uses of its service", standIns, product)
	}
}
