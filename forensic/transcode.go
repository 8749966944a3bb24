package forensic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
)

// errSlow makes the transcoder hand a line to the full parser.
var errSlow = errors.New("forensic: needs the full parser")

// transcoder turns a line in any JSON layout whose strings are already
// escaped the canonical way (the seed writes json.dumps(record,
// ensure_ascii=False): same string escapes and float repr as canonical, only
// separators and key order differ) into the canonical bytes, without
// building Go values. Anything it is not sure about (escaped keys, duplicate
// keys, non-canonical escapes or numbers, bad syntax) returns errSlow and the
// caller parses the line the slow way, which decides.
type transcoder struct {
	in     []byte
	pos    int
	vals   []byte
	mem    []member
	out    []byte
	curr   []byte
	mac    []byte
	seq    uint64
	hasSeq bool
}

type member struct {
	k0, k1 int // key bytes in in (without quotes)
	v0, v1 int // canonical value bytes in vals
}

// transcode returns the canonical bytes of the top-level object without
// curr_hash and hmac; t.curr / t.mac / t.seq hold those fields.
func (t *transcoder) transcode(line []byte) ([]byte, error) {
	t.in, t.pos = line, 0
	t.vals, t.mem, t.curr, t.mac, t.hasSeq = t.vals[:0], t.mem[:0], nil, nil, false
	t.ws()
	if t.pos >= len(t.in) || t.in[t.pos] != '{' {
		return nil, errSlow
	}
	mem, vals, err := t.members(t.mem, t.vals, true)
	if err != nil {
		return nil, err
	}
	t.mem, t.vals = mem, vals
	t.ws()
	if t.pos != len(t.in) {
		return nil, errSlow
	}
	t.out = assemble(t.out[:0], t.in, mem, vals)
	return t.out, nil
}

func (t *transcoder) ws() {
	for t.pos < len(t.in) && t.in[t.pos] <= ' ' {
		switch t.in[t.pos] {
		case ' ', '\t', '\n', '\r':
			t.pos++
		default:
			return
		}
	}
}

// members parses an object at t.pos ('{'), appending its members (values
// canonical in vals). top marks the record level, where curr_hash and hmac
// are taken out and seq is captured.
func (t *transcoder) members(mem []member, vals []byte, top bool) ([]member, []byte, error) {
	t.pos++ // '{'
	t.ws()
	if t.pos < len(t.in) && t.in[t.pos] == '}' {
		t.pos++
		return mem, vals, nil
	}
	for {
		t.ws()
		if t.pos >= len(t.in) || t.in[t.pos] != '"' {
			return nil, nil, errSlow
		}
		k0 := t.pos + 1
		k1 := k0
		for k1 < len(t.in) && t.in[k1] != '"' {
			if t.in[k1] == '\\' || t.in[k1] < 0x20 {
				return nil, nil, errSlow
			}
			k1++
		}
		if k1 >= len(t.in) {
			return nil, nil, errSlow
		}
		t.pos = k1 + 1
		t.ws()
		if t.pos >= len(t.in) || t.in[t.pos] != ':' {
			return nil, nil, errSlow
		}
		t.pos++
		t.ws()
		key := t.in[k0:k1]
		v0 := len(vals)
		var err error
		if vals, err = t.value(vals); err != nil {
			return nil, nil, err
		}
		skip := false
		if top {
			switch string(key) {
			case "curr_hash", "hmac":
				v := vals[v0:]
				if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v[1:len(v)-1], '\\') >= 0 {
					return nil, nil, errSlow
				}
				if key[0] == 'c' {
					t.curr = v[1 : len(v)-1]
				} else {
					t.mac = v[1 : len(v)-1]
				}
				skip = true
			case "seq":
				if n, err := strconv.ParseUint(string(vals[v0:]), 10, 64); err == nil {
					t.seq, t.hasSeq = n, true
				}
			}
		}
		if !skip {
			mem = append(mem, member{k0, k1, v0, len(vals)})
		}
		t.ws()
		if t.pos >= len(t.in) {
			return nil, nil, errSlow
		}
		if t.in[t.pos] == ',' {
			t.pos++
			continue
		}
		if t.in[t.pos] == '}' {
			t.pos++
			break
		}
		return nil, nil, errSlow
	}
	// sort by key bytes (== code point order; keys have no escapes)
	for i := 1; i < len(mem); i++ {
		for j := i; j > 0; j-- {
			c := bytes.Compare(t.in[mem[j].k0:mem[j].k1], t.in[mem[j-1].k0:mem[j-1].k1])
			if c == 0 {
				return nil, nil, errSlow // duplicate key: Python keeps the last; let the parser do it
			}
			if c > 0 {
				break
			}
			mem[j], mem[j-1] = mem[j-1], mem[j]
		}
	}
	return mem, vals, nil
}

func assemble(dst, in []byte, mem []member, vals []byte) []byte {
	dst = append(dst, '{')
	for i, m := range mem {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, in[m.k0:m.k1]...)
		dst = append(dst, '"', ':')
		dst = append(dst, vals[m.v0:m.v1]...)
	}
	return append(dst, '}')
}

// value appends the canonical form of the value at t.pos.
func (t *transcoder) value(dst []byte) ([]byte, error) {
	if t.pos >= len(t.in) {
		return nil, errSlow
	}
	switch c := t.in[t.pos]; {
	case c == '"':
		return t.str(dst)
	case c == '{':
		mem, vals, err := t.members(nil, nil, false)
		if err != nil {
			return nil, err
		}
		return assemble(dst, t.in, mem, vals), nil
	case c == '[':
		t.pos++
		dst = append(dst, '[')
		t.ws()
		if t.pos < len(t.in) && t.in[t.pos] == ']' {
			t.pos++
			return append(dst, ']'), nil
		}
		for n := 0; ; n++ {
			if n > 0 {
				dst = append(dst, ',')
			}
			t.ws()
			var err error
			if dst, err = t.value(dst); err != nil {
				return nil, err
			}
			t.ws()
			if t.pos >= len(t.in) {
				return nil, errSlow
			}
			if t.in[t.pos] == ',' {
				t.pos++
				continue
			}
			if t.in[t.pos] == ']' {
				t.pos++
				return append(dst, ']'), nil
			}
			return nil, errSlow
		}
	case c == 't' && bytes.HasPrefix(t.in[t.pos:], []byte("true")):
		t.pos += 4
		return append(dst, "true"...), nil
	case c == 'f' && bytes.HasPrefix(t.in[t.pos:], []byte("false")):
		t.pos += 5
		return append(dst, "false"...), nil
	case c == 'n' && bytes.HasPrefix(t.in[t.pos:], []byte("null")):
		t.pos += 4
		return append(dst, "null"...), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return t.num(dst)
	}
	return nil, errSlow
}

// str copies a string whose escapes are already canonical.
func (t *transcoder) str(dst []byte) ([]byte, error) {
	i := t.pos + 1
	for i < len(t.in) {
		// skip eight plain bytes at a time
		for i+8 <= len(t.in) && !special8(binary.LittleEndian.Uint64(t.in[i:])) {
			i += 8
		}
		if i >= len(t.in) {
			break
		}
		c := t.in[i]
		switch {
		case c == '"':
			dst = append(dst, t.in[t.pos:i+1]...)
			t.pos = i + 1
			return dst, nil
		case c < 0x20:
			return nil, errSlow
		case c == '\\':
			if i+1 >= len(t.in) {
				return nil, errSlow
			}
			switch t.in[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				// canonical only for C0 controls without a short form, lowercase hex
				if i+6 > len(t.in) || t.in[i+2] != '0' || t.in[i+3] != '0' {
					return nil, errSlow
				}
				h, l := t.in[i+4], t.in[i+5]
				if h != '0' && h != '1' || !(l >= '0' && l <= '9' || l >= 'a' && l <= 'f') {
					return nil, errSlow
				}
				if h == '0' && (l == '8' || l == '9' || l == 'a' || l == 'c' || l == 'd') {
					return nil, errSlow
				}
				i += 6
			default:
				return nil, errSlow
			}
		default:
			i++
		}
	}
	return nil, errSlow
}

// special8 reports whether any of the eight bytes in x is '"', '\\' or a
// control byte (< 0x20): the classic has-zero-byte / has-less-than tests,
// exact as a yes/no answer.
func special8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	less20 := (x - ones*0x20) & ^x & highs
	return less20|hasZero(x^(ones*'"'))|hasZero(x^(ones*'\\')) != 0
}

func (t *transcoder) num(dst []byte) ([]byte, error) {
	s := t.pos
	i := s
	isFloat := false
	for i < len(t.in) {
		c := t.in[i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' {
			i++
		} else if c == '.' || c == 'e' || c == 'E' {
			isFloat = true
			i++
		} else {
			break
		}
	}
	lit := t.in[s:i]
	if !isJSONNumber(unsafeString(lit)) {
		return nil, errSlow
	}
	t.pos = i
	if !isFloat {
		if len(lit) == 2 && lit[0] == '-' && lit[1] == '0' {
			return nil, errSlow
		}
		return append(dst, lit...), nil
	}
	f, err := strconv.ParseFloat(unsafeString(lit), 64)
	if err != nil {
		return nil, errSlow
	}
	return appendPyFloat(dst, f), nil
}
