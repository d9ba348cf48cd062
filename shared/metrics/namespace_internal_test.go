package metrics

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzValidNamespace holds ValidNamespace to NamespacePattern and the reserved prefix.
func FuzzValidNamespace(f *testing.F) {
	pattern := regexp.MustCompile(NamespacePattern)
	for _, s := range []string{"", DefaultNamespace, "AWS/Lambda", "aws/x", "My-App/prod#1:x.y_z", "-a", "a b", "é",
		"a\n", strings.Repeat("a", 255), strings.Repeat("a", 256), "/x", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidNamespace(s), pattern.MatchString(s) && !strings.HasPrefix(s, "AWS/"); got != want {
			t.Errorf("ValidNamespace(%q) = %v, want %v", s, got, want)
		}
	})
}
