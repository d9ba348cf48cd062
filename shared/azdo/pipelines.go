package azdo

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParsePipelines reads the value of AZURE_DEVOPS_PIPELINES: comma-separated
// name=project/pipelineId entries, each optionally @refs/heads/branch. Names follow the webhook rule and are
// unique; the project is a name Azure allows (none of / \ : * ? " < > | ; # $ , + = @
// [ ] { } or control characters, at most 64 characters, not starting with _ or a period
// nor ending with one); the id a positive integer below a billion; the
// branch a full ref of letters, digits and - . _ /. template.yaml's pattern refuses
// the same.
// An error says what is wrong with which entry, to follow the variable's name.
func ParsePipelines(v string) ([]Pipeline, error) {
	var out []Pipeline
	if v = strings.TrimSpace(v); v == "" {
		return nil, nil
	}
	for entry := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(entry) == "" {
			return nil, entryError("has an empty entry: a comma too many?")
		}
		p, err := pipelineEntry(strings.TrimSpace(entry))
		if err != nil {
			return nil, fmt.Errorf("entry %q %w", clipEntry(entry), err)
		}
		for _, q := range out {
			if q.Name == p.Name {
				return nil, fmt.Errorf("names %q twice", p.Name)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

type entryError string

func (e entryError) Error() string { return string(e) }

func pipelineEntry(entry string) (Pipeline, error) {
	n, rest, ok := strings.Cut(entry, "=")
	if !ok {
		return Pipeline{}, entryError("is not name=project/pipelineId")
	}
	p := Pipeline{Name: strings.TrimSpace(n)}
	if !ValidName(p.Name) {
		return Pipeline{}, entryError("has a name that does not match [-_A-Za-z0-9]+")
	}
	rest, p.Branch, _ = strings.Cut(strings.TrimSpace(rest), "@")
	rest, p.Branch = strings.TrimSpace(rest), strings.TrimSpace(p.Branch)
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Pipeline{}, entryError("is not name=project/pipelineId")
	}
	p.Project, rest = strings.TrimSpace(rest[:i]), strings.TrimSpace(rest[i+1:])
	if !projectName(p.Project) {
		return Pipeline{}, entryError("has a project name Azure DevOps does not allow")
	}
	id, err := strconv.Atoi(rest)
	if err != nil || id < 1 || id > 999_999_999 || rest[0] == '0' || rest[0] == '+' {
		return Pipeline{}, entryError("has a pipeline id that is not a positive integer")
	}
	p.ID = id
	if p.Branch != "" && !branchRef(p.Branch) {
		return Pipeline{}, entryError("has a branch that is not a full ref such as refs/heads/main")
	}
	if strings.Contains(entry, "@") && p.Branch == "" {
		return Pipeline{}, entryError("has an empty branch after @")
	}
	return p, nil
}

// projectName: 1 to 64 characters, none that Azure DevOps forbids in a project name
// (or that the entry's own syntax uses), no control character, not starting with _ or
// a period and not ending with a period, as Azure DevOps requires (so never . or ..,
// which a URL would read as a path step).
func projectName(s string) bool {
	if n := utf8.RuneCountInString(s); n == 0 || n > 64 || !utf8.ValidString(s) ||
		s[0] == '_' || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`/\:*?"<>|;#$,+=@[]{}`, r) {
			return false
		}
	}
	return true
}

// branchRef: refs/ and 1 to 250 letters, digits and - . _ /.
func branchRef(s string) bool {
	rest, ok := strings.CutPrefix(s, "refs/")
	return ok && len(rest) > 0 && len(rest) <= 250 && refChars(rest)
}

func clipEntry(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "…"
	}
	return s
}

// refChars reports whether s holds only ASCII letters, digits and - . _ /.
func refChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._/", c) >= 0) {
			return false
		}
	}
	return true
}
