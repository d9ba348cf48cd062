package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's job: what the project is, with its picture on the first screen,
// the two commands and the deploy steps on the first two, the rest in docs/.
const (
	readmeMaxBytes      = 12 << 10 // 12 KB
	readmePictureWithin = 40       // lines
	// docsMaxBytes bounds docs/*.md in all: each fact said once, in the file its
	// topic names, keeps them short.
	docsMaxBytes = 110 << 10 // 110 KB
)

// readmeSections are the README's sections, in their order.
var readmeSections = []string{"## You need", "## Try it", "## Deploy", "## Wire Azure DevOps", "## Wire Port", "## Where the rest lives"}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadmeFitsItsJob: the README stays within 12 KB, opens with the Mermaid picture,
// keeps its sections in order and points at the docs index.
func TestReadmeFitsItsJob(t *testing.T) {
	readme := readDoc(t, "README.md")
	if len(readme) > readmeMaxBytes {
		t.Errorf("README.md is %d bytes, more than %d: move the detail to docs/", len(readme), readmeMaxBytes)
	}
	lines := strings.Split(readme, "\n")
	picture := -1
	for i, l := range lines[:min(len(lines), readmePictureWithin)] {
		if strings.TrimSpace(l) == "```mermaid" {
			picture = i
			break
		}
	}
	switch {
	case picture < 0:
		t.Errorf("README.md has no ```mermaid block in its first %d lines: the picture belongs on the first screen", readmePictureWithin)
	case picture+1 >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[picture+1]), "flowchart"):
		t.Errorf("README.md's Mermaid block does not start with a flowchart")
	}
	at := 0
	for _, s := range readmeSections {
		i := strings.Index(readme[at:], "\n"+s)
		if i < 0 {
			t.Errorf("README.md has no section %q after the previous one (want, in order: %s)", s, strings.Join(readmeSections, ", "))
			continue
		}
		at += i + 1
	}
	if !strings.Contains(readme, "(docs/README.md)") {
		t.Errorf("README.md does not link the docs index, docs/README.md")
	}
}

// TestDocsStayShort: docs/*.md stay under 110 KB in all, and the README under 12 KB.
func TestDocsStayShort(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no docs/*.md: the test read nothing")
	}
	total := 0
	for _, f := range files {
		total += len(readDoc(t, strings.TrimPrefix(f, root+string(filepath.Separator))))
	}
	if total >= docsMaxBytes {
		t.Errorf("docs/*.md hold %d bytes in all, want under %d: say each fact once, in the file its topic names", total, docsMaxBytes)
	}
	if n := len(readDoc(t, "README.md")); n >= readmeMaxBytes {
		t.Errorf("README.md is %d bytes, want under %d: move the detail to docs/", n, readmeMaxBytes)
	}
}

// TestDocsIndexListsEveryFile: docs/README.md names every file in docs/, and only those.
func TestDocsIndexListsEveryFile(t *testing.T) {
	index := readDoc(t, "docs/README.md")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if name := filepath.Base(f); name != "README.md" {
			names = append(names, name)
			if !strings.Contains(index, "("+name+")") {
				t.Errorf("docs/README.md does not list docs/%s", name)
			}
		}
	}
	for _, m := range regexp.MustCompile(`\]\(([A-Za-z0-9_-]+\.md)\)`).FindAllStringSubmatch(index, -1) {
		if !slices.Contains(names, m[1]) {
			t.Errorf("docs/README.md lists %s, which is not in docs/", m[1])
		}
	}
}

// TestConfigurationNamesEveryParameter: docs/configuration.md names every parameter of
// template.yaml and every variable the template sets, and its parameter tables name no
// parameter the template does not have.
func TestConfigurationNamesEveryParameter(t *testing.T) {
	doc := readDoc(t, "docs/configuration.md")
	tpl := loadTemplate(t)
	params := keys(get(tpl, "Parameters"))
	if len(params) == 0 {
		t.Fatal("template.yaml has no Parameters: the test read nothing")
	}
	for _, p := range params {
		if !strings.Contains(doc, "`"+p+"`") {
			t.Errorf("template parameter %s is not named in docs/configuration.md", p)
		}
	}
	vars := keys(get(tpl, "Globals", "Function", "Environment", "Variables"))
	for _, name := range keys(get(tpl, "Resources")) {
		vars = append(vars, keys(get(tpl, "Resources", name, "Properties", "Environment", "Variables"))...)
	}
	for _, v := range vars {
		if !strings.Contains(doc, "`"+v+"`") {
			t.Errorf("the template sets %s, which docs/configuration.md does not name", v)
		}
	}
	_, tables, ok := strings.Cut(doc, "## Template parameters")
	if !ok {
		t.Fatal(`docs/configuration.md has no "## Template parameters" section`)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Za-z0-9]+)` \\|")
	rows := row.FindAllStringSubmatch(tables, -1)
	for _, m := range rows {
		if !slices.Contains(params, m[1]) {
			t.Errorf("docs/configuration.md documents parameter %s, which template.yaml does not have", m[1])
		}
	}
	if len(rows) != len(params) {
		t.Errorf("docs/configuration.md's parameter tables have %d rows, template.yaml %d parameters", len(rows), len(params))
	}
}

// TestDocumentedMakeTargetsExist: every `make <target>` the README and docs/ name is a
// target of the Makefile.
func TestDocumentedMakeTargetsExist(t *testing.T) {
	makefile := readDoc(t, "Makefile")
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z][-A-Za-z]*):`).FindAllStringSubmatch(makefile, -1) {
		targets[m[1]] = true
	}
	named := regexp.MustCompile("(?m)(?:`|^\\s*)make ([A-Za-z][-A-Za-z]*)")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "events", "README.md")}, files...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.HasSuffix(target, "-") { // a pattern such as build-<LogicalId>
				continue
			}
			if !targets[target] {
				rel, _ := filepath.Rel(root, f)
				t.Errorf("%s names `make %s`, which the Makefile does not have", rel, target)
			}
		}
	}
}
