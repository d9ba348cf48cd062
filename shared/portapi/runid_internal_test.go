package portapi

import (
	"regexp"
	"strings"
	"testing"
)

// runIDPattern is what ValidRunID replaced; the fuzz test holds ValidRunID to it.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

func FuzzValidRunID(f *testing.F) {
	for _, s := range []string{"", "r_abc", "r-1_X", "r abc", "r/abc", "é", "r\n", strings.Repeat("a", 100), strings.Repeat("a", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidRunID(s), runIDPattern.MatchString(s); got != want {
			t.Errorf("ValidRunID(%q) = %v, want %v", s, got, want)
		}
	})
}
