package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// readmeLogSamples checks the sample log lines of the README and of every docs/*.md
// (docs/logs.md holds most) against what the functions wrote during the suite: every
// sample's level, msg and error text must have been written by a real invocation, so
// the documentation cannot show a line the code never writes.
func readmeLogSamples() []string {
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		return []string{err.Error()}
	}
	type key struct{ level, msg, err string }
	seen := map[key]bool{}
	auditMu.Lock()
	for _, src := range auditSources {
		for _, line := range src() {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil {
				e, _ := m["error"].(string)
				seen[key{fmt.Sprint(m["level"]), fmt.Sprint(m["msg"]), e}] = true
			}
		}
	}
	auditMu.Unlock()
	var problems []string
	samples := 0
	for _, path := range append([]string{"../README.md"}, docs...) {
		name := strings.TrimPrefix(path, "../")
		f, err := os.Open(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, `{"time":"…","level":`) {
				continue
			}
			samples++
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				problems = append(problems, fmt.Sprintf("%s: log sample is not JSON: %s", name, line))
				continue
			}
			e, _ := m["error"].(string)
			if k := (key{fmt.Sprint(m["level"]), fmt.Sprint(m["msg"]), e}); !seen[k] {
				problems = append(problems, fmt.Sprintf("%s: log sample %s %q with error %q: no function wrote such a line", name, k.level, k.msg, k.err))
			}
		}
		if err := sc.Err(); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
		f.Close()
	}
	if samples == 0 {
		problems = append(problems, "no log sample in README.md or docs/*.md: the check would pass on nothing (docs/logs.md should hold them)")
	}
	return problems
}
