package forensic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// errSlow makes the transcoder hand a line to the full parser.
var errSlow = errors.New("forensic: needs the full parser")

// transcoder projects a line in any JSON layout (the seed writes
// json.dumps(record, ensure_ascii=False): ", " and ": " separators, keys in
// insertion order) onto candidate canonical bytes without building Go
// values: whitespace between tokens is dropped, object keys are sorted, and
// every scalar (string, number, literal) is copied as written.
//
// The projection is optimistic. For a line the seed wrote, its scalars are
// already in canonical form (same string escapes and float repr), so the
// projection is the canonical encoding. For an edited line (a number
// written "1.00", a string with "\u0041") the projection is bytes that are
// not the canonical encoding of anything, its hash cannot match (SHA-256
// collision resistance), and the verifier falls back to the full parser,
// which decides. What makes this sound: the projection means what the line
// means (same keys, same scalar text), so whenever it is itself a canonical
// encoding it is the canonical encoding of the line. A duplicate key stays
// in the projection twice, which no canonical encoding has; a duplicate
// curr_hash or hmac (left out of the projection) sets dup.
// TestTranscoderProjection and FuzzTranscoder check that property.
//
// What the projection does not handle returns errSlow: escaped keys (they
// do not sort like code points), whitespace between a top-level key and
// its ':', bad syntax, a curr_hash or hmac that is not a string.
type transcoder struct {
	in       []byte
	pos      int
	vals     []byte   // projections of nested containers
	mem      []member // top-level members, in line order
	perms    []keyPerm
	nextPerm int    // the cached order replaced next
	sig      uint64 // signature of the top-level keys, in line order
	out      []byte
	curr     []byte
	mac      []byte
	seq      uint64
	hasSeq   bool
	dup      bool     // curr_hash or hmac appears twice
	qm       []uint64 // quote masks of in (quotemask.go)
}

// member is one object member: the key (without quotes) in the line, the
// value's projection in the line (scalars) or in vals (containers).
type member struct {
	k0, k1 int32
	v0, v1 int32
	nested bool
}

// keyPerm is a cached key order of top-level members under the signature
// of their keys in line order: the seed builds each event type's dict the
// same way, so a log holds a few distinct orders and a line usually needs
// a lookup, not a sort.
type keyPerm struct {
	sig   uint64
	order []uint8
}

// maxKeyPerms bounds the cached orders; a miss costs one insertion sort.
const maxKeyPerms = 16

// transcode returns the projection of the top-level object without
// curr_hash and hmac; t.curr / t.mac / t.seq hold those fields.
func (t *transcoder) transcode(line []byte) ([]byte, error) {
	if len(line) > math.MaxInt32 { // member offsets are int32
		return nil, errSlow
	}
	t.in, t.pos = line, 0
	t.qm = quoteMasks(t.qm, line)
	t.vals, t.mem, t.curr, t.mac, t.hasSeq, t.dup = t.vals[:0], t.mem[:0], nil, nil, false, false
	t.ws()
	if t.pos >= len(t.in) || t.in[t.pos] != '{' {
		return nil, errSlow
	}
	if err := t.top(); err != nil {
		return nil, err
	}
	t.ws()
	if t.pos != len(t.in) {
		return nil, errSlow
	}
	order, err := t.sortTop()
	if err != nil {
		return nil, err
	}
	t.out = t.project(order)
	return t.out, nil
}

// project writes the members in order as canonical bytes into t.out and
// returns them. The projection is never longer than the line plus the
// nested projections. Most spans (a key, a number) are short, so they are
// moved 16 bytes at a time without a call (memmove's call cost dominated
// here): a span whose source has 16 readable bytes past its end is copied
// in whole 16-byte words, which may write up to 15 bytes past it into the
// buffer's slack, overwritten by what follows; others go through copy.
func (t *transcoder) project(order []uint8) []byte {
	in, vals, mem := t.in, t.vals, t.mem
	need := len(in) + len(vals) + 2 + 16
	if cap(t.out) < need {
		t.out = make([]byte, 0, need+need/4)
	}
	out := t.out[:cap(t.out)]
	pin, pout := unsafe.Pointer(unsafe.SliceData(in)), unsafe.Pointer(unsafe.SliceData(out))
	out[0] = '{'
	o := 1
	for _, j := range order {
		m := &mem[j]
		// "key": (the line has it with the ':' right after the quote)
		a, b := int(m.k0)-1, int(m.k1)+2
		if b+16 <= len(in) {
			for i := 0; i < b-a; i += 16 {
				*(*[16]byte)(unsafe.Add(pout, o+i)) = *(*[16]byte)(unsafe.Add(pin, a+i))
			}
			o += b - a
		} else {
			o += copy(out[o:], in[a:b])
		}
		a, b = int(m.v0), int(m.v1)
		switch {
		case m.nested:
			o += copy(out[o:], vals[a:b])
		case b+16 <= len(in):
			for i := 0; i < b-a; i += 16 {
				*(*[16]byte)(unsafe.Add(pout, o+i)) = *(*[16]byte)(unsafe.Add(pin, a+i))
			}
			o += b - a
		default:
			o += copy(out[o:], in[a:b])
		}
		out[o] = ','
		o++
	}
	if len(order) > 0 {
		o--
	}
	out[o] = '}'
	return out[:o+1]
}

// ws skips JSON whitespace.
func (t *transcoder) ws() {
	for t.pos < len(t.in) && isWS(t.in[t.pos]) {
		t.pos++
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace, where json.dumps writes one space (before a key, after
// its ':'): that space is stepped over before the loop.
func skipSpace(in []byte, i int) int {
	if i < len(in) && in[i] == ' ' {
		i++
	}
	for i < len(in) && isWS(in[i]) {
		i++
	}
	return i
}

// key reads a member key at t.pos and the ':' after it; keys with escapes
// go to the parser (their escaped bytes do not sort like code points).
func (t *transcoder) key() (k0, k1 int, err error) {
	t.ws()
	if t.pos >= len(t.in) || t.in[t.pos] != '"' {
		return 0, 0, errSlow
	}
	k0 = t.pos + 1
	n := bytes.IndexByte(t.in[k0:], '"')
	if n < 0 || bytes.IndexByte(t.in[k0:k0+n], '\\') >= 0 {
		return 0, 0, errSlow
	}
	k1 = k0 + n
	t.pos = k1 + 1
	t.ws()
	if t.pos >= len(t.in) || t.in[t.pos] != ':' {
		return 0, 0, errSlow
	}
	t.pos++
	t.ws()
	return k0, k1, nil
}

// next consumes the ',' or the closing byte after a member or element and
// reports whether the container ended.
func (t *transcoder) next(closing byte) (end bool, err error) {
	t.ws()
	if t.pos >= len(t.in) {
		return false, errSlow
	}
	switch t.in[t.pos] {
	case ',':
		t.pos++
		return false, nil
	case closing:
		t.pos++
		return true, nil
	}
	return false, errSlow
}

// top scans the top-level object at t.pos ('{') into t.mem, taking out
// curr_hash and hmac, capturing seq, and hashing the keys into t.sig. It is
// the hot loop of seed-layout verification, so it is one function over the
// line with no calls for the common tokens.
func (t *transcoder) top() error {
	in, mem, qm := t.in, t.mem[:0], t.qm
	i := t.pos + 1
	sig := uint64(0)
	for i < len(in) && isWS(in[i]) {
		i++
	}
	if i < len(in) && in[i] == '}' {
		t.pos, t.sig, t.mem = i+1, sig, mem
		return nil
	}
	for {
		i = skipSpace(in, i)
		// the key, with the ':' right after its quote (as json.dumps
		// writes it); escapes go to the parser, they do not sort like
		// code points
		if i >= len(in) || in[i] != '"' {
			return errSlow
		}
		k0 := i + 1
		j := nextQuote(qm, k0, len(in))
		if j+1 >= len(in) || in[j] != '"' || in[j+1] != ':' {
			return errSlow
		}
		k1 := j
		i = j + 2
		i = skipSpace(in, i)
		if i >= len(in) {
			return errSlow
		}
		v0, nested := i, false
		switch c := in[i]; {
		case c == '"':
			e, ok := stringEnd(qm, in, i)
			if !ok {
				return errSlow
			}
			i = e
		case c >= '0' && c <= '9' || c == '-':
			e, ok := numberEnd(in, i)
			if !ok {
				return errSlow
			}
			i = e
		case c == '{' || c == '[':
			nested, v0 = true, len(t.vals)
			if c == '[' {
				if e, vals, ok := flatArray(qm, in, i, t.vals); ok {
					t.vals, i = vals, e
					break
				}
			}
			t.pos = i
			var err error
			if t.vals, err = t.container(t.vals); err != nil {
				return err
			}
			i = t.pos
		default:
			e, err := scalarEnd(in, i)
			if err != nil {
				return err
			}
			i = e
		}
		v1 := i
		if nested {
			v1 = len(t.vals)
		}
		skip := false
		if n := k1 - k0; n == 3 || n == 4 || n == 9 { // curr_hash, hmac, seq
			var err error
			if skip, err = t.special(k0, k1, v0, v1, nested); err != nil {
				return err
			}
		}
		if !skip {
			// the fields are stored in place: a member literal built on
			// the stack and copied with one 16-byte load stalls on store
			// forwarding (it was 40% of this loop's time on Zen 5)
			if len(mem) == cap(mem) {
				mem = append(mem, member{})[:len(mem)]
			}
			mem = mem[:len(mem)+1]
			m := &mem[len(mem)-1]
			m.k0, m.k1, m.v0, m.v1, m.nested = int32(k0), int32(k1), int32(v0), int32(v1), nested
			sig = (bits.RotateLeft64(sig, 23) ^ keyWord(in, k0, k1)) * 0x9e3779b97f4a7c15
		}
		for i < len(in) && isWS(in[i]) {
			i++
		}
		if i >= len(in) {
			return errSlow
		}
		if in[i] == ',' {
			i++
			continue
		}
		if in[i] == '}' {
			t.pos, t.sig, t.mem = i+1, sig, mem
			return nil
		}
		return errSlow
	}
}

// flatArray appends to dst the projection of the array at in[i] ('[') when
// it is what records hold, scalars separated by ", " or "," (a shape, a
// list of block ids), and returns the index after it. Anything else (a
// nested container, other whitespace) reports false with dst unchanged,
// for container, which projects it the same way.
func flatArray(qm []uint64, in []byte, i int, dst []byte) (int, []byte, bool) {
	d0 := len(dst)
	dst = append(dst, '[')
	j := i + 1
	if j < len(in) && in[j] == ']' {
		return j + 1, append(dst, ']'), true
	}
	for j < len(in) {
		s := j
		var ok bool
		switch c := in[j]; {
		case c >= '0' && c <= '9' || c == '-':
			j, ok = numberEnd(in, j)
		case c == '"':
			j, ok = stringEnd(qm, in, j)
		case c == 't' || c == 'f' || c == 'n':
			e, err := scalarEnd(in, j)
			j, ok = e, err == nil
		}
		if !ok || j >= len(in) {
			break
		}
		dst = append(dst, in[s:j]...)
		if in[j] == ']' {
			return j + 1, append(dst, ']'), true
		}
		if in[j] != ',' {
			break
		}
		dst = append(dst, ',')
		j++
		if j < len(in) && in[j] == ' ' {
			j++
		}
	}
	return i, dst[:d0], false
}

// numberEnd returns the end of the number literal at in[i] (the end of the
// run of number bytes) and whether it is an RFC 8259 number. Plain
// decimals, which is what records hold (an optional '-', digits without a
// leading zero, an optional '.' and digits), are recognized in one pass over
// digit runs; anything else (exponents, a sign elsewhere, a second '.') gets
// the full check.
func numberEnd(in []byte, i int) (int, bool) {
	e := i
	if in[e] == '-' {
		e++
	}
	d0 := e
	for e < len(in) && in[e]-'0' < 10 {
		e++
	}
	ok := e > d0 && (in[d0] != '0' || e == d0+1)
	if ok && e < len(in) && in[e] == '.' {
		e++
		f0 := e
		for e < len(in) && in[e]-'0' < 10 {
			e++
		}
		ok = e > f0
	}
	if ok && (e == len(in) || !isNumByte(in[e])) {
		return e, true
	}
	for e < len(in) && isNumByte(in[e]) {
		e++
	}
	return e, isJSONNumber(unsafeString(in[i:e]))
}

// isWS reports JSON whitespace; every other byte that can follow a token is
// above ' ', so the common case is one comparison.
func isWS(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

func isNumByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'
}

// keyWord packs a key's length and its first and last eight bytes for the
// key-order signature (two lists that differ only in the middle of long
// keys share a signature: the later one always goes to the parser).
func keyWord(in []byte, k0, k1 int) uint64 {
	n := k1 - k0
	var w uint64
	if k0+8 <= len(in) {
		w = binary.LittleEndian.Uint64(in[k0:])
		if n < 8 {
			w &= 1<<(8*uint(n)) - 1
		} else if n > 8 {
			w ^= bits.RotateLeft64(binary.LittleEndian.Uint64(in[k1-8:]), 29)
		}
	} else {
		for j := k0; j < k1; j++ {
			w |= uint64(in[j]) << (8 * uint(j-k0))
		}
	}
	return w ^ uint64(n)<<56
}

// stringEnd returns the index after the closing quote of the string that
// starts at in[i].
func stringEnd(qm []uint64, in []byte, i int) (int, bool) {
	for j := i + 1; ; j += 2 { // past an escape: the next byte is taken as is
		j = nextQuote(qm, j, len(in))
		if j >= len(in) {
			return 0, false
		}
		if in[j] == '"' {
			return j + 1, true
		}
	}
}

// special takes curr_hash, hmac and seq out of a top-level member and
// reports whether the member is left out of the projection. curr_hash and
// hmac must be strings; their content is left to the verifier, which
// accepts a line only when they are exactly the lowercase hex digests it
// computes (checkLine checks an hmac it has no key for with isLowerHex).
func (t *transcoder) special(k0, k1, v0, v1 int, nested bool) (skip bool, err error) {
	key := t.in[k0:k1]
	switch string(key) {
	case "curr_hash", "hmac":
		v := t.in[v0:v1]
		if nested || v[0] != '"' {
			return false, errSlow
		}
		if key[0] == 'c' {
			t.dup = t.dup || t.curr != nil
			t.curr = v[1 : len(v)-1]
		} else {
			t.dup = t.dup || t.mac != nil
			t.mac = v[1 : len(v)-1]
		}
		return true, nil
	case "seq":
		if !nested {
			if n, err := strconv.ParseUint(unsafeString(t.in[v0:v1]), 10, 64); err == nil {
				t.seq, t.hasSeq = n, true
			}
		}
	}
	return false, nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// sortTop returns the order of the top-level members by key, from the cached
// order of the same key signature when there is one. A cached order is not
// checked: a signature collision gives a projection with unsorted keys,
// which is not canonical and goes to the parser. A new key list is sorted
// (stable: duplicate keys stay in line order).
func (t *transcoder) sortTop() ([]uint8, error) {
	mem := t.mem
	var p []uint8
	for i := range t.perms {
		if t.perms[i].sig == t.sig && len(t.perms[i].order) == len(mem) {
			p = t.perms[i].order
			break
		}
	}
	if p == nil {
		if len(mem) > 255 {
			return nil, errSlow
		}
		p = make([]uint8, len(mem))
		for i := range p {
			p[i] = uint8(i)
		}
		for i := 1; i < len(p); i++ {
			for j := i; j > 0; j-- {
				if bytes.Compare(t.memKey(mem[p[j]]), t.memKey(mem[p[j-1]])) >= 0 {
					break
				}
				p[j], p[j-1] = p[j-1], p[j]
			}
		}
		if len(t.perms) < maxKeyPerms {
			t.perms = append(t.perms, keyPerm{})
		}
		t.perms[t.nextPerm] = keyPerm{t.sig, p}
		t.nextPerm = (t.nextPerm + 1) % maxKeyPerms
	}
	return p, nil
}

func (t *transcoder) memKey(m member) []byte { return t.in[m.k0:m.k1] }

// container appends the projection of the object or array at t.pos to dst.
// Nested objects are rare in records, so each gets its own scratch.
func (t *transcoder) container(dst []byte) ([]byte, error) {
	if t.in[t.pos] == '[' {
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
			if end, err := t.next(']'); err != nil {
				return nil, err
			} else if end {
				return append(dst, ']'), nil
			}
		}
	}
	t.pos++ // '{'
	var mem []member
	var vals []byte
	t.ws()
	if t.pos < len(t.in) && t.in[t.pos] == '}' {
		t.pos++
		return append(dst, "{}"...), nil
	}
	for {
		k0, k1, err := t.key()
		if err != nil {
			return nil, err
		}
		v0 := len(vals)
		if vals, err = t.value(vals); err != nil {
			return nil, err
		}
		mem = append(mem, member{k0: int32(k0), k1: int32(k1), v0: int32(v0), v1: int32(len(vals)), nested: true})
		if end, err := t.next('}'); err != nil {
			return nil, err
		} else if end {
			break
		}
	}
	for i := 1; i < len(mem); i++ {
		for j := i; j > 0; j-- {
			if bytes.Compare(t.memKey(mem[j]), t.memKey(mem[j-1])) >= 0 {
				break
			}
			mem[j], mem[j-1] = mem[j-1], mem[j]
		}
	}
	dst = append(dst, '{')
	for i, m := range mem {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, t.in[m.k0-1:m.k1+1]...)
		dst = append(dst, ':')
		dst = append(dst, vals[m.v0:m.v1]...)
	}
	return append(dst, '}'), nil
}

// value appends the projection of the value at t.pos to dst.
func (t *transcoder) value(dst []byte) ([]byte, error) {
	if t.pos >= len(t.in) {
		return nil, errSlow
	}
	s := t.pos
	var e int
	switch c := t.in[s]; {
	case c == '{' || c == '[':
		return t.container(dst)
	case c >= '0' && c <= '9' || c == '-':
		var ok bool
		if e, ok = numberEnd(t.in, s); !ok {
			return nil, errSlow
		}
	default:
		var err error
		if e, err = scalarEnd(t.in, s); err != nil {
			return nil, err
		}
	}
	t.pos = e
	return append(dst, t.in[s:e]...), nil
}

// scalarEnd returns the end of the string, number or literal that starts
// at in[i]. Strings end at the first unescaped quote; their content is not
// checked (bytes a canonical encoding never holds cannot hash right).
// Numbers must be RFC 8259 literals, so that no two tokens run together.
func scalarEnd(in []byte, i int) (int, error) {
	if i >= len(in) {
		return 0, errSlow
	}
	switch c := in[i]; {
	case c == '"':
		for j := i + 1; ; {
			q := bytes.IndexByte(in[j:], '"')
			if q < 0 {
				return 0, errSlow
			}
			q += j
			b := q - 1
			for b > i && in[b] == '\\' {
				b--
			}
			if (q-1-b)%2 == 0 {
				return q + 1, nil
			}
			j = q + 1
		}
	case c == '-' || (c >= '0' && c <= '9'):
		e, ok := numberEnd(in, i)
		if !ok {
			return 0, errSlow
		}
		return e, nil
	case c == 't' && bytes.HasPrefix(in[i:], []byte("true")):
		return i + 4, nil
	case c == 'f' && bytes.HasPrefix(in[i:], []byte("false")):
		return i + 5, nil
	case c == 'n' && bytes.HasPrefix(in[i:], []byte("null")):
		return i + 4, nil
	}
	return 0, errSlow
}
