package config

import (
	"regexp"
	"testing"
)

// FuzzNames holds orgName and headerName to the patterns they replaced.
func FuzzNames(f *testing.F) {
	org := regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9]{0,49}$`)
	header := regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	for _, s := range []string{"", "my-org", "-org", "org-", "a b", "x-port-signature", "X-Hub-Signature", "a:b", "é",
		"a\n", "0123456789012345678901234567890123456789012345678_", "01234567890123456789012345678901234567890123456789", "012345678901234567890123456789012345678901234567890"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := orgName(s), org.MatchString(s); got != want {
			t.Errorf("orgName(%q) = %v, want %v", s, got, want)
		}
		if got, want := headerName(s), header.MatchString(s); got != want {
			t.Errorf("headerName(%q) = %v, want %v", s, got, want)
		}
	})
}
