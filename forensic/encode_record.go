package forensic

import (
	"encoding/binary"
	"encoding/hex"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"unsafe"
)

// The record encoder: a record's fields plus the writer's own (event_type,
// kid, prev_hash, seq, fse, schema, ts, trace_id) as the canonical JSON
// object, keys in code-point order (see canonical.go for the values).

// kvKind says which field of a kv holds its value (kvAny: v, encoded by
// appendCanonical); kvUUID, kvPrev and kvSeq are filled in while encoding.
type kvKind uint8

const (
	kvAny kvKind = iota
	kvString
	kvUint
	kvFloat
	kvUUID
	kvPrev
	kvSeq
)

// kv is one key of a record being encoded.
type kv struct {
	key  string
	kind kvKind
	s    string
	u    uint64
	f    float64
	v    any
}

// appendUUID appends a quoted random (version 4) UUID drawn from rng: the
// trace_id the seed gives every record.
func appendUUID(b []byte, rng *mrand.ChaCha8) []byte {
	var u [16]byte
	x, y := rng.Uint64(), rng.Uint64()
	for i := 0; i < 8; i++ {
		u[i] = byte(x >> (8 * i))
		u[8+i] = byte(y >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [38]byte
	s[0] = '"'
	hex.Encode(s[1:9], u[0:4])
	s[9] = '-'
	hex.Encode(s[10:14], u[4:6])
	s[14] = '-'
	hex.Encode(s[15:19], u[6:8])
	s[19] = '-'
	hex.Encode(s[20:24], u[8:10])
	s[24] = '-'
	hex.Encode(s[25:37], u[10:16])
	s[37] = '"'
	return append(b, s[:]...)
}

// unsafeString views b as a string without copying; b must not change
// while the string is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// sortKey orders the keys of a record: pfx holds the first eight bytes of
// the key big-endian (zero-padded), i its index in the kv slice.
type sortKey struct {
	pfx uint64
	i   uint32
}

// keyPrefix packs the first eight bytes of k big-endian, zero-padded, so
// that prefix order agrees with string order wherever the prefixes differ.
func keyPrefix(k string) uint64 {
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(unsafe.Slice(unsafe.StringData(k), 8))
	}
	var p uint64
	for i := 0; i < len(k); i++ {
		p |= uint64(k[i]) << (56 - 8*i)
	}
	return p
}

// keyLess reports whether a's key sorts before b's (byte order).
func keyLess(kvs []kv, a, b sortKey) bool {
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	return kvs[a.i].key < kvs[b.i].key
}

// recordEncoder is the reusable state of one goroutine that encodes records:
// the kv scratch slice and the key templates of the field lists it has seen.
// Not safe for concurrent use; the writer and each pipeline worker own one.
type recordEncoder struct {
	kvs   []kv
	tmpls []*keyTemplate
	next  int   // the template replaced next once maxKeyTemplates are cached
	err   error // the first field list refused by checkKeys (AppendConst): the writer stops
}

// maxKeyTemplates bounds the key templates one encoder keeps. The core logs
// a few dozen distinct field lists at most; a caller with more pays the sort
// on a miss, never unbounded memory.
const maxKeyTemplates = 32

// keyTemplate is the part of a record's encoding that depends only on its
// keys, computed once per distinct field list: the order in which the kvs are
// written (keys sorted by code point, which for UTF-8 is byte order) and each
// key already encoded with the separator before it ({"key": or ,"key":).
type keyTemplate struct {
	fse  bool     // the record carries fse (a forward-secure log)
	keys []string // the caller's field keys in the caller's order (copies)
	ord  []uint32 // kv indices in output order
	pre  []string // pre[i] is written before the value of kvs[ord[i]]
	err  error    // checkKeys' verdict on the keys (Append checked them already)
}

func (t *keyTemplate) matches(fse bool, fields []Field) bool {
	if t.fse != fse || len(t.keys) != len(fields) {
		return false
	}
	for i := range fields {
		if t.keys[i] != fields[i].Key {
			return false
		}
	}
	return true
}

// template returns the cached template for (fse, fields) or builds one from
// kvs, the record's kv list in encodeCanon's layout.
func (e *recordEncoder) template(ev string, fse bool, fields []Field, kvs []kv) *keyTemplate {
	for _, t := range e.tmpls {
		if t.matches(fse, fields) {
			return t
		}
	}
	t := newKeyTemplate(fse, fields, kvs)
	t.err = checkKeys(ev, fields)
	if len(e.tmpls) < maxKeyTemplates {
		e.tmpls = append(e.tmpls, t)
	} else {
		e.tmpls[e.next] = t
		e.next = (e.next + 1) % maxKeyTemplates
	}
	return t
}

func newKeyTemplate(fse bool, fields []Field, kvs []kv) *keyTemplate {
	t := &keyTemplate{fse: fse, keys: make([]string, len(fields)), ord: make([]uint32, 0, len(kvs)), pre: make([]string, len(kvs))}
	for i, f := range fields {
		t.keys[i] = strings.Clone(f.Key) // the caller's key may alias memory it reuses
	}
	// Insertion sort (stable, small n) of (key prefix, index) pairs, comparing
	// the first eight key bytes as one integer.
	ord := make([]sortKey, 0, len(kvs))
	for i := range kvs {
		e := sortKey{pfx: keyPrefix(kvs[i].key), i: uint32(i)}
		j := len(ord)
		ord = append(ord, e)
		for ; j > 0 && keyLess(kvs, e, ord[j-1]); j-- {
			ord[j] = ord[j-1]
		}
		ord[j] = e
	}
	var b []byte
	for i, o := range ord {
		t.ord = append(t.ord, o.i)
		b = b[:0]
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = appendPyString(b, kvs[o.i].key)
		b = append(b, ':')
		t.pre[i] = string(b)
	}
	return t
}

// encodeCanon writes the canonical record. With placeholder the values of
// prev_hash and seq are left out and cutA/cutB are the offsets where they go
// (prev_hash sorts before seq); the pipeline fills them in later.
func encodeCanon(b []byte, enc *recordEncoder, rng *mrand.ChaCha8, kid string, fse int64, ev string, fields []Field, ts int64, prev []byte, seq uint64, placeholder bool) (out []byte, cutA, cutB int) {
	kvs := enc.kvs[:0]
	kvs = append(kvs,
		kv{key: "event_type", kind: kvString, s: ev},
		kv{key: "kid", kind: kvString, s: kid},
		kv{key: "prev_hash", kind: kvPrev},
		kv{key: "seq", kind: kvSeq, u: seq})
	if fse >= 0 {
		kvs = append(kvs, kv{key: "fse", kind: kvUint, u: uint64(fse)})
	}
	var hasSchema, hasTS, hasTrace bool
	for _, f := range fields {
		switch f.Key {
		case "schema":
			hasSchema = true
		case "ts":
			hasTS = true
		case "trace_id":
			hasTrace = true
		}
		switch v := f.Value.(type) {
		case string: // validated by Append
			kvs = append(kvs, kv{key: f.Key, kind: kvString, s: v})
		case Text:
			kvs = append(kvs, kv{key: f.Key, kind: kvString, s: string(v)})
		default:
			kvs = append(kvs, kv{key: f.Key, kind: kvAny, v: f.Value})
		}
	}
	if !hasSchema {
		kvs = append(kvs, kv{key: "schema", kind: kvUint, u: 1})
	}
	if !hasTS {
		kvs = append(kvs, kv{key: "ts", kind: kvFloat, f: float64(ts) / 1e9})
	}
	if !hasTrace {
		kvs = append(kvs, kv{key: "trace_id", kind: kvUUID})
	}
	t := enc.template(ev, fse >= 0, fields, kvs)
	if t.err != nil && enc.err == nil {
		enc.err = t.err
	}
	for i, o := range t.ord {
		e := &kvs[o]
		b = append(b, t.pre[i]...)
		switch e.kind {
		case kvString:
			b = appendPyString(b, e.s)
		case kvUint:
			b = strconv.AppendUint(b, e.u, 10)
		case kvSeq:
			if placeholder {
				cutB = len(b)
			} else {
				b = strconv.AppendUint(b, e.u, 10)
			}
		case kvFloat:
			b = appendPyFloat(b, e.f)
		case kvUUID:
			b = appendUUID(b, rng)
		case kvPrev:
			if placeholder {
				cutA = len(b)
			} else {
				b = appendPyString(b, unsafeString(prev))
			}
		default:
			b, _ = appendCanonical(b, e.v) // validated by Append
		}
	}
	b = append(b, '}')
	clear(kvs) // drop references
	enc.kvs = kvs[:0]
	return b, cutA, cutB
}
