package azdo

import (
	"regexp"
	"strings"
	"testing"
)

// namePattern is what ValidName replaced; the fuzz test holds ValidName to it.
var namePattern = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"", "port_trigger", "a-b_C9", "a b", "a/b", "é", "a\n", strings.Repeat("a", 256), strings.Repeat("a", 257)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidName(s), len(s) <= 256 && namePattern.MatchString(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	})
}
