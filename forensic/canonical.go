package forensic

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrUnsupported is wrapped by Canonical and Append when a value has a type
// or content the chain cannot encode (unknown Go type, invalid UTF-8,
// non-integer json.Number that is not a JSON number, ...).
var ErrUnsupported = errors.New("forensic: unsupported value")

// Canonical returns v serialized exactly like Python's
// json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":")).
//
// Supported value kinds: nil, bool, string, all Go integer types, float32,
// float64, json.Number, []int64, []int, []uint32, []string, []float64, []any,
// map[string]any, map[string]string and []Field (an object whose keys are
// the Field keys). Non-finite floats are written as Python writes them
// (NaN, Infinity, -Infinity), which is not valid JSON; Append refuses them.
func Canonical(v any) ([]byte, error) {
	return appendCanonical(nil, v)
}

func appendCanonical(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		if !utf8.ValidString(x) {
			return b, fmt.Errorf("%w: string is not valid UTF-8", ErrUnsupported)
		}
		return appendPyString(b, x), nil
	case Text:
		return appendPyString(b, string(x)), nil
	case Decimal:
		b = append(b, '"')
		b = strconv.AppendUint(b, uint64(x), 10)
		return append(b, '"'), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float32:
		return appendPyFloat(b, float64(x)), nil
	case float64:
		return appendPyFloat(b, x), nil
	case json.Number:
		return appendNumber(b, x)
	case []int64:
		return appendList(b, x, func(b []byte, e int64) ([]byte, error) { return strconv.AppendInt(b, e, 10), nil })
	case []int:
		return appendList(b, x, func(b []byte, e int) ([]byte, error) { return strconv.AppendInt(b, int64(e), 10), nil })
	case []uint32:
		return appendList(b, x, func(b []byte, e uint32) ([]byte, error) { return strconv.AppendUint(b, uint64(e), 10), nil })
	case []float64:
		return appendList(b, x, func(b []byte, e float64) ([]byte, error) { return appendPyFloat(b, e), nil })
	case []string:
		return appendList(b, x, func(b []byte, e string) ([]byte, error) {
			if !utf8.ValidString(e) {
				return b, fmt.Errorf("%w: string is not valid UTF-8", ErrUnsupported)
			}
			return appendPyString(b, e), nil
		})
	case []any:
		return appendList(b, x, appendCanonical)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // UTF-8 byte order == code point order for valid UTF-8
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			if !utf8.ValidString(k) {
				return b, fmt.Errorf("%w: key is not valid UTF-8", ErrUnsupported)
			}
			b = appendPyString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendCanonical(b, x[k]); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return appendCanonical(b, m)
	case []Field:
		m := make(map[string]any, len(x))
		for _, f := range x {
			m[f.Key] = f.Value
		}
		return appendCanonical(b, m)
	default:
		if nv, ok := normalize(v); ok {
			return appendCanonical(b, nv)
		}
		return b, fmt.Errorf("%w: type %T", ErrUnsupported, v)
	}
}

// normalize maps named basic types (type Handle uint64, type Mode string),
// other slices and string-keyed maps onto the kinds Canonical handles.
func normalize(v any) (any, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint(), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	case reflect.String:
		return rv.String(), true
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, true
		}
		return rv.Elem().Interface(), true
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return []any{}, true
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out, true
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, false
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[it.Key().String()] = it.Value().Interface()
		}
		return out, true
	}
	return nil, false
}

// appendNumber writes a json.Number the way Python re-serializes the number
// json.loads made of it: integer literals as Python ints, everything else as
// a Python float.
func appendNumber(b []byte, n json.Number) ([]byte, error) {
	s := string(n)
	if !isJSONNumber(s) {
		return b, fmt.Errorf("%w: json.Number %q is not a JSON number", ErrUnsupported, s)
	}
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return append(b, '0'), nil
		}
		return append(b, s...), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return b, fmt.Errorf("%w: json.Number %q: %v", ErrUnsupported, s, err)
	}
	return appendPyFloat(b, f), nil
}

// isJSONNumber reports whether s is a number literal per RFC 8259.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

const hexLower = "0123456789abcdef"

// appendList writes a JSON list, encoding each element with enc. Typed
// element encoders keep the common slice types free of boxing.
func appendList[T any](b []byte, xs []T, enc func([]byte, T) ([]byte, error)) ([]byte, error) {
	b = append(b, '[')
	for i, e := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = enc(b, e); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendPyString quotes s like Python's json encoder with ensure_ascii=False:
// only '"', '\\' and C0 controls are escaped; \b \f \n \r \t use short forms,
// the rest \u00xx with lowercase hex. s must be valid UTF-8. (A test of eight
// bytes at a time was tried: records' strings are too short for it to pay.)
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexLower[c>>4], hexLower[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendPyFloat writes f like Python's float.__repr__: the shortest
// round-tripping digits, positional notation with a ".0" for decimal
// exponents in [-4, 16), scientific notation with a signed exponent of at
// least two digits otherwise.
func appendPyFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	// repr writes fixed notation exactly when the shortest round-trip digits
	// have a decimal exponent in [-4, 16), which for a finite double is
	// 1e-4 <= |f| < 1e16 (both bounds are the doubles nearest those powers):
	// Go's shortest 'f' digits are the same, plus ".0" when integral.
	if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
		// An integral value prints as its integer and ".0" (coverage_pct
		// 100.0 in every sanitize record): below 2^53 every integer is a
		// double and a shorter digit string is another double; in
		// [2^53, 1e16) doubles are even integers, two apart, so dropping a
		// digit moves by at least 2 there too.
		if i := int64(f); float64(i) == f {
			return append(strconv.AppendInt(b, i, 10), '.', '0')
		}
		n := len(b)
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
		for _, c := range b[n:] {
			if c == '.' {
				return b
			}
		}
		return append(b, '.', '0')
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // [-]d[.ddd]e±XX
	neg := false
	if e[0] == '-' {
		neg = true
		e = e[1:]
	}
	ePos := 0
	for ePos < len(e) && e[ePos] != 'e' {
		ePos++
	}
	mant := e[:ePos]
	exp, _ := strconv.Atoi(string(e[ePos+1:]))
	var digits [24]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	d := digits[:nd]
	if neg {
		b = append(b, '-')
	}
	if exp >= -4 && exp < 16 {
		if exp < 0 {
			b = append(b, '0', '.')
			for i := 0; i < -exp-1; i++ {
				b = append(b, '0')
			}
			return append(b, d...)
		}
		// exp >= 0: integer part has exp+1 digits
		if nd <= exp+1 {
			b = append(b, d...)
			for i := nd; i < exp+1; i++ {
				b = append(b, '0')
			}
			return append(b, '.', '0')
		}
		b = append(b, d[:exp+1]...)
		b = append(b, '.')
		return append(b, d[exp+1:]...)
	}
	b = append(b, d[0])
	if nd > 1 {
		b = append(b, '.')
		b = append(b, d[1:]...)
	}
	b = append(b, 'e')
	if exp < 0 {
		b = append(b, '-')
		exp = -exp
	} else {
		b = append(b, '+')
	}
	if exp < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(exp), 10)
}
