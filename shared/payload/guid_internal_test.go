package payload

import (
	"regexp"
	"testing"
)

// guidPattern is what guid replaced; the fuzz test holds guid to it.
var guidPattern = regexp.MustCompile(`^(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|\{[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\})$`)

func FuzzGUID(f *testing.F) {
	for _, s := range []string{"", "0123456789abcdefABCDEF0123456789", "01234567-89ab-cdef-ABCD-0123456789ab",
		"{01234567-89ab-cdef-ABCD-0123456789ab}", "{0123456789abcdefABCDEF0123456789}", "01234567-89ab-cdef-ABCD-0123456789ag",
		"{01234567-89ab-cdef-ABCD-0123456789ab", "0123456789abcdefABCDEF012345678\n", "01234567+89ab-cdef-ABCD-0123456789ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := guid(s), guidPattern.MatchString(s); got != want {
			t.Errorf("guid(%q) = %v, want %v", s, got, want)
		}
	})
}
