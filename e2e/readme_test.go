package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// readmeLogSamples checks the README's sample log lines against what the functions
// wrote during the suite: every sample's msg and error text must have been written
// by a real invocation, so the README cannot show a line the code never writes.
func readmeLogSamples() []string {
	f, err := os.Open("../README.md")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
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
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, `{"time":"…","level":`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			problems = append(problems, fmt.Sprintf("README log sample is not JSON: %s", line))
			continue
		}
		e, _ := m["error"].(string)
		if k := (key{fmt.Sprint(m["level"]), fmt.Sprint(m["msg"]), e}); !seen[k] {
			problems = append(problems, fmt.Sprintf("README log sample %s %q with error %q: no function wrote such a line", k.level, k.msg, k.err))
		}
	}
	return problems
}
