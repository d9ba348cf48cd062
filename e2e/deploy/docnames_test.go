package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// What the docs name in backquotes and the code must hold: a test, fuzz target,
// benchmark or example (`TestX`, `TestX/row`); a package's identifier (`relay.Margin`);
// a path in the repository (`shared/ledger/ledger.go`).
var (
	testName  = regexp.MustCompile("`((?:Test|Fuzz|Benchmark|Example)[A-Za-z0-9_]+)[^`]*`")
	qualified = regexp.MustCompile("`([a-z][a-z0-9]*)\\.([A-Z][A-Za-z0-9_]*)[^`]*`")
	repoPath  = regexp.MustCompile("`((?:shared|functions|cmd|e2e|events)/[A-Za-z0-9_./-]*[A-Za-z0-9_])[^`]*`")
)

// TestDocsNameWhatTheCodeHas: a doc that names a test, an identifier or a file names
// one that exists, so that the docs cannot drift from the code unnoticed.
func TestDocsNameWhatTheCodeHas(t *testing.T) {
	tests, decls := map[string]bool{}, map[string]map[string]bool{} // package name → its top-level names
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := strings.TrimSuffix(f.Name.Name, "_test")
		if decls[pkg] == nil {
			decls[pkg] = map[string]bool{}
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					decls[pkg][d.Name.Name] = true
					if strings.HasSuffix(path, "_test.go") {
						tests[d.Name.Name] = true
					}
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						decls[pkg][s.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range s.Names {
							decls[pkg][n.Name] = true
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"))
	named := 0
	for _, doc := range docs {
		text := readDoc(t, strings.TrimPrefix(doc, root+string(filepath.Separator)))
		name := filepath.Base(doc)
		for _, m := range testName.FindAllStringSubmatch(text, -1) {
			named++
			if !tests[m[1]] {
				t.Errorf("%s names %s, which no _test.go file defines", name, m[1])
			}
		}
		for _, m := range qualified.FindAllStringSubmatch(text, -1) {
			if names, ours := decls[m[1]]; ours && m[1] != "main" {
				named++
				if !names[m[2]] {
					t.Errorf("%s names %s.%s, which package %s does not define", name, m[1], m[2], m[1])
				}
			}
		}
		for _, m := range repoPath.FindAllStringSubmatch(text, -1) {
			named++
			p := strings.TrimSuffix(strings.TrimSuffix(m[1], "/..."), "/")
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s names %s, which the repository does not hold", name, m[1])
			}
		}
	}
	if named < 20 {
		t.Errorf("found %d names of code in the docs: the patterns no longer match how the docs write them", named)
	}
}

// TestEveryPackageListsItsErrors: a package whose errors the functions answer lists
// every sentinel it exports in its Errors, which the functions' tables are held to.
func TestEveryPackageListsItsErrors(t *testing.T) {
	for _, pkg := range []string{"azdo", "entra", "ledger", "secret", "portapi"} {
		t.Run(pkg, func(t *testing.T) {
			sentinels, listed := map[string]bool{}, map[string]bool{}
			files, _ := filepath.Glob(filepath.Join(root, "shared", pkg, "*.go"))
			for _, file := range files {
				if strings.HasSuffix(file, "_test.go") {
					continue
				}
				f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range f.Decls {
					g, ok := d.(*ast.GenDecl)
					if !ok || g.Tok != token.VAR {
						continue
					}
					for _, s := range g.Specs {
						v := s.(*ast.ValueSpec)
						for i, n := range v.Names {
							switch {
							case n.Name != "Errors" && strings.HasPrefix(n.Name, "Err"):
								sentinels[n.Name] = true
							case n.Name == "Errors" && i < len(v.Values):
								if lit, ok := v.Values[i].(*ast.CompositeLit); ok {
									for _, e := range lit.Elts {
										if id, ok := e.(*ast.Ident); ok {
											listed[id.Name] = true
										}
									}
								}
							}
						}
					}
				}
			}
			if len(listed) == 0 {
				t.Fatalf("shared/%s has no Errors list", pkg)
			}
			for name := range sentinels {
				if !listed[name] {
					t.Errorf("shared/%s exports %s but its Errors does not list it", pkg, name)
				}
			}
		})
	}
}
