package dynamotest

import (
	"math/big"
	"strconv"
	"strings"
)

// DynamoDB numbers are decimals, sent as strings, with up to 38 significant digits and a
// magnitude between 1E-130 and 9.9999999999999999999999999999999999999E+125. They are
// compared and added exactly, never as float64: "0.1" + "0.2" is "0.3", and a ledger's
// epoch seconds in milliseconds still compare right.

const (
	maxDigits   = 38
	maxExponent = 125  // of the leading digit, in scientific notation
	minExponent = -130 // likewise
)

// decimal is coef × 10^exp with coef free of trailing zeros; zero is coef "".
type decimal struct {
	neg  bool
	coef string // decimal digits, no leading or trailing zeros
	exp  int
}

// parseNumber reads a DynamoDB number the way DynamoDB does (Java's BigDecimal syntax:
// optional sign, digits with an optional point, optional exponent) and checks its range.
func parseNumber(s string) (decimal, *apiError) {
	bad := validation("The parameter cannot be converted to a numeric value: " + s)
	var d decimal
	rest := s
	if rest != "" && (rest[0] == '+' || rest[0] == '-') {
		d.neg = rest[0] == '-'
		rest = rest[1:]
	}
	mantissa, exponent, hasExp := strings.Cut(strings.ToLower(rest), "e")
	intPart, fracPart, _ := strings.Cut(mantissa, ".")
	digits := intPart + fracPart
	if digits == "" || !allDigits(digits) || strings.Count(mantissa, ".") > 1 {
		return decimal{}, bad
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(exponent)
		if err != nil || e > 1<<20 || e < -(1<<20) {
			return decimal{}, bad
		}
		exp = e
	}
	exp -= len(fracPart)
	trimmed := strings.TrimLeft(digits, "0")
	withoutTrailing := strings.TrimRight(trimmed, "0")
	exp += len(trimmed) - len(withoutTrailing)
	d.coef, d.exp = withoutTrailing, exp
	if d.coef == "" {
		return decimal{}, nil // zero has no sign
	}
	return d, d.check()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// check refuses what DynamoDB cannot store.
func (d decimal) check() *apiError {
	if d.coef == "" {
		return nil
	}
	if len(d.coef) > maxDigits {
		return validation("Attempting to store more than 38 significant digits in a Number")
	}
	switch lead := d.exp + len(d.coef) - 1; {
	case lead > maxExponent:
		return validation("Number overflow. Attempting to store a number with magnitude larger than supported range")
	case lead < minExponent:
		return validation("Number underflow. Attempting to store a number with magnitude smaller than supported range")
	}
	return nil
}

// String is the canonical form DynamoDB answers: plain notation, no superfluous zeros.
func (d decimal) String() string {
	if d.coef == "" {
		return "0"
	}
	var b strings.Builder
	if d.neg {
		b.WriteByte('-')
	}
	switch point := len(d.coef) + d.exp; {
	case d.exp >= 0:
		b.WriteString(d.coef + strings.Repeat("0", d.exp))
	case point > 0:
		b.WriteString(d.coef[:point] + "." + d.coef[point:])
	default:
		b.WriteString("0." + strings.Repeat("0", -point) + d.coef)
	}
	return b.String()
}

// cmpDecimal returns -1, 0 or 1 as a is less than, equal to or greater than b.
func cmpDecimal(a, b decimal) int {
	sa, sb := a.sign(), b.sign()
	if sa != sb {
		return cmpInt(sa, sb)
	}
	if sa == 0 {
		return 0
	}
	c := cmpMagnitude(a, b)
	if sa < 0 {
		return -c
	}
	return c
}

func (d decimal) sign() int {
	switch {
	case d.coef == "":
		return 0
	case d.neg:
		return -1
	}
	return 1
}

func cmpMagnitude(a, b decimal) int {
	if la, lb := a.exp+len(a.coef), b.exp+len(b.coef); la != lb {
		return cmpInt(la, lb)
	}
	// Same leading position: compare digit by digit, the shorter padded with zeros.
	n := max(len(a.coef), len(b.coef))
	return strings.Compare(a.coef+strings.Repeat("0", n-len(a.coef)), b.coef+strings.Repeat("0", n-len(b.coef)))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// addDecimal returns a + b (b negated first when sub), checked like a stored number.
func addDecimal(a, b decimal, sub bool) (decimal, *apiError) {
	if sub {
		b.neg = !b.neg
	}
	exp := min(a.exp, b.exp)
	sum := new(big.Int).Add(a.scaled(exp), b.scaled(exp))
	d, err := parseNumber(sum.String() + "e" + strconv.Itoa(exp))
	if err != nil {
		return decimal{}, err
	}
	return d, nil
}

// scaled is d as an integer count of 10^exp, for an exp no greater than d.exp.
func (d decimal) scaled(exp int) *big.Int {
	if d.coef == "" {
		return new(big.Int)
	}
	n, _ := new(big.Int).SetString(d.coef+strings.Repeat("0", d.exp-exp), 10)
	if d.neg {
		n.Neg(n)
	}
	return n
}
