package forensic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

const (
	sufCurr = `,"curr_hash":"`
	sufMac  = `","hmac":"`
	// fast-path suffix lengths: ,"curr_hash":"<64>"} and ,"curr_hash":"<64>","hmac":"<64>"}
	sufPlainLen = len(sufCurr) + 64 + 2
	sufMacLen   = len(sufCurr) + 64 + len(sufMac) + 64 + 2
)

// fastSplit recognises a line in the writer's own layout:
//
//	<canonical record without its closing '}'>,"curr_hash":"<hex>"[,"hmac":"<hex>"]}
//
// and returns the canonical prefix (without the final '}'), the hash and the
// HMAC (nil when absent). ok is false for any other layout.
func fastSplit(line []byte) (prefix, curr, mac []byte, ok bool) {
	n := len(line)
	if n >= sufMacLen+2 && line[0] == '{' && line[n-1] == '}' && line[n-2] == '"' {
		s := n - sufMacLen
		if string(line[s:s+len(sufCurr)]) == sufCurr && string(line[n-66-len(sufMac):n-66]) == sufMac {
			return line[:s], line[s+len(sufCurr) : s+len(sufCurr)+64], line[n-66 : n-2], true
		}
	}
	if n >= sufPlainLen+2 && line[0] == '{' && line[n-1] == '}' && line[n-2] == '"' {
		s := n - sufPlainLen
		if string(line[s:s+len(sufCurr)]) == sufCurr {
			return line[:s], line[s+len(sufCurr) : n-2], nil, true
		}
	}
	return nil, nil, nil, false
}

// topLevelSeq finds the top-level "seq" integer in a canonical object prefix.
func topLevelSeq(prefix []byte) (uint64, bool) {
	var at int // no guess
	return topLevelSeqAt(prefix, &at)
}

// topLevelSeqAt finds the top-level "seq" integer of a canonical object
// prefix, looking first where *at says `,"seq":` starts (the offset in the
// previous line of a log: lines of one layout share it; 0: no guess); it
// updates the guess. A match at the guess with no '{' before it is
// the top-level key: `,"` cannot occur inside a string, nested keys sit
// after a '{', and top-level keys are unique in canonical bytes.
func topLevelSeqAt(prefix []byte, at *int) (uint64, bool) {
	const pat = `,"seq":`
	if first := `{"seq":`; len(prefix) > len(first) && string(prefix[:len(first)]) == first {
		return parseUintAt(prefix[len(first):]) // no record of ours starts so, but one may
	}
	if i := *at; i > 0 && i+len(pat) <= len(prefix) && string(prefix[i:i+len(pat)]) == pat && bytes.IndexByte(prefix[1:i], '{') < 0 {
		return parseUintAt(prefix[i+len(pat):])
	}
	if i := indexSeqKey(prefix); i > 0 && bytes.IndexByte(prefix[1:i], '{') < 0 {
		*at = i
		return parseUintAt(prefix[i+len(pat):])
	}
	return topLevelUint(prefix, pat)
}

// indexSeqKey is bytes.Index(prefix, `,"seq":`), searching for the rare
// 'q' instead of the ',' that starts every key (bytes.Index stops at each).
func indexSeqKey(prefix []byte) int {
	const pat = `,"seq":`
	for off := 4; off < len(prefix); {
		j := bytes.IndexByte(prefix[off:], 'q')
		if j < 0 {
			return -1
		}
		i := off + j - 4
		if i+len(pat) <= len(prefix) && string(prefix[i:i+len(pat)]) == pat {
			return i
		}
		off += j + 1
	}
	return -1
}

func parseUintAt(b []byte) (uint64, bool) {
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == 0 || (j < len(b) && b[j] != ',' && b[j] != '}') {
		return 0, false
	}
	if j < 20 { // cannot overflow
		var v uint64
		for _, c := range b[:j] {
			v = v*10 + uint64(c-'0')
		}
		return v, true
	}
	v, err := strconv.ParseUint(string(b[:j]), 10, 64)
	return v, err == nil
}

var errNotObject = errors.New("line is not a JSON object")

// parseLine decodes one line like Python's json.loads (numbers kept exact).
func parseLine(line []byte) (map[string]any, error) {
	if !utf8.Valid(line) {
		return nil, errors.New("line is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON object")
	}
	// reject trailing garbage that Decoder.More ignores (e.g. "}x")
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		return nil, errors.New("trailing data after JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	return m, nil
}

// hasDuplicateKey reports whether any object in a line that parseLine
// accepted holds a key twice (after unescaping): json.loads and parseLine
// keep the last, another parser may read the first, so no writer of ours
// or the seed's produces one. Only the slow path calls it.
func hasDuplicateKey(line []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]struct{}
		expect bool // next string token in an object is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if k, isStr := tok.(string); isStr && len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].expect {
			n := len(stack)
			if _, seen := stack[n-1].keys[k]; seen {
				return true
			}
			stack[n-1].keys[k] = struct{}{}
			stack[n-1].expect = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{obj: true, keys: map[string]struct{}{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return false
			}
		}
		// a value ended: the enclosing object expects a key next
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].expect = true
		}
	}
}

// slowCanonical returns the canonical bytes of a parsed record without
// curr_hash and hmac, plus those two values.
func slowCanonical(m map[string]any) (canon []byte, curr, mac string, hasMac bool, err error) {
	if c, ok := m["curr_hash"].(string); ok {
		curr = c
	}
	if v, ok := m["hmac"]; ok && v != nil {
		s, _ := v.(string)
		mac, hasMac = s, s != ""
	}
	tmp := make(map[string]any, len(m))
	for k, v := range m {
		if k != "curr_hash" && k != "hmac" {
			tmp[k] = v
		}
	}
	canon, err = Canonical(tmp)
	return canon, curr, mac, hasMac, err
}

func getString(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func getUint(m map[string]any, k string) (uint64, bool) {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	return v, err == nil
}

func getFloat(m map[string]any, k string) float64 {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0
	}
	f, _ := strconv.ParseFloat(string(n), 64)
	return f
}

// reservedKeys are set by the writer; callers may not pass them.
var reservedKeys = map[string]bool{
	"event_type": true, "prev_hash": true, "curr_hash": true, "hmac": true, "seq": true, "kid": true, "fse": true,
}

// Text is a string field value that the caller has already checked to be
// valid UTF-8 (an identifier validated once when its buffer was registered,
// say): Append and the encoder do not scan it again. It is logged exactly as
// the same string would be. Passing invalid UTF-8 as Text is a caller bug
// that makes the record's canonical bytes differ from Python's.
type Text string

// Decimal is an unsigned integer logged as a JSON string of its decimal
// digits, e.g. a handle: Decimal(42) is written "42". Boxing it costs no
// formatting and no string allocation on the caller's path.
type Decimal uint64

// validateValue checks that v is encodable and finite.
func validateValue(v any) error {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, []int64, []int, []uint32, Text, Decimal:
		return nil
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("%w: string is not valid UTF-8", ErrUnsupported)
		}
	case float32:
		return checkFinite(float64(x))
	case float64:
		return checkFinite(x)
	case []float64:
		for _, f := range x {
			if err := checkFinite(f); err != nil {
				return err
			}
		}
	case json.Number:
		if !isJSONNumber(string(x)) {
			return fmt.Errorf("%w: json.Number %q", ErrUnsupported, string(x))
		}
	case []string:
		for _, s := range x {
			if !utf8.ValidString(s) {
				return fmt.Errorf("%w: string is not valid UTF-8", ErrUnsupported)
			}
		}
	case []any:
		for _, e := range x {
			if err := validateValue(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) {
				return fmt.Errorf("%w: key is not valid UTF-8", ErrUnsupported)
			}
			if err := validateValue(e); err != nil {
				return err
			}
		}
	case map[string]string:
		for k, e := range x {
			if !utf8.ValidString(k) || !utf8.ValidString(e) {
				return fmt.Errorf("%w: string is not valid UTF-8", ErrUnsupported)
			}
		}
	default:
		if nv, ok := normalize(v); ok {
			return validateValue(nv)
		}
		return fmt.Errorf("%w: type %T", ErrUnsupported, v)
	}
	return nil
}

func checkFinite(f float64) error {
	if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
		return fmt.Errorf("%w: non-finite float %v", ErrUnsupported, f)
	}
	return nil
}
