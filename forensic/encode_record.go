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

// A keyTemplate writes each key's value from one of these sources: the
// writer's own fields, or srcField+j, the caller's field j.
const (
	srcEvent  = iota // event_type
	srcKid           // kid
	srcPrev          // prev_hash (left out with placeholder)
	srcSeq           // seq (left out with placeholder)
	srcFse           // fse (forward-secure logs)
	srcSchema        // schema 1, unless the caller set schema
	srcTS            // ts, unless the caller set ts
	srcTrace         // a random trace_id, unless the caller set trace_id
	srcField         // srcField+j: fields[j]
)

// kv is one key of a record and where its value comes from, the input of
// newKeyTemplate.
type kv struct {
	key string
	src uint32
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
	kvs   []kv // scratch for building a template
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
	src  []uint32 // the value sources (src*) in output order
	pre  []string // pre[i] is written before the value from src[i]
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

// template returns the cached template for (fse, fields), building and
// caching one on a miss.
func (e *recordEncoder) template(ev string, fse bool, fields []Field) *keyTemplate {
	for _, t := range e.tmpls {
		if t.matches(fse, fields) {
			return t
		}
	}
	kvs := e.keyList(fse, fields)
	t := newKeyTemplate(fse, fields, kvs)
	clear(kvs) // drop the references to the caller's keys
	t.err = checkKeys(ev, fields)
	if len(e.tmpls) < maxKeyTemplates {
		e.tmpls = append(e.tmpls, t)
	} else {
		e.tmpls[e.next] = t
		e.next = (e.next + 1) % maxKeyTemplates
	}
	return t
}

// keyList is a record's keys with their value sources: the writer's own,
// the caller's fields, then schema, ts and trace_id where the caller did not
// set them.
func (e *recordEncoder) keyList(fse bool, fields []Field) []kv {
	kvs := append(e.kvs[:0],
		kv{"event_type", srcEvent}, kv{"kid", srcKid}, kv{"prev_hash", srcPrev}, kv{"seq", srcSeq})
	if fse {
		kvs = append(kvs, kv{"fse", srcFse})
	}
	var hasSchema, hasTS, hasTrace bool
	for j, f := range fields {
		switch f.Key {
		case "schema":
			hasSchema = true
		case "ts":
			hasTS = true
		case "trace_id":
			hasTrace = true
		}
		kvs = append(kvs, kv{f.Key, srcField + uint32(j)})
	}
	if !hasSchema {
		kvs = append(kvs, kv{"schema", srcSchema})
	}
	if !hasTS {
		kvs = append(kvs, kv{"ts", srcTS})
	}
	if !hasTrace {
		kvs = append(kvs, kv{"trace_id", srcTrace})
	}
	e.kvs = kvs
	return kvs
}

func newKeyTemplate(fse bool, fields []Field, kvs []kv) *keyTemplate {
	t := &keyTemplate{fse: fse, keys: make([]string, len(fields)), src: make([]uint32, 0, len(kvs)), pre: make([]string, len(kvs))}
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
		t.src = append(t.src, kvs[o.i].src)
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
	t := enc.template(ev, fse >= 0, fields)
	if t.err != nil && enc.err == nil {
		enc.err = t.err
	}
	for i, src := range t.src {
		b = append(b, t.pre[i]...)
		switch src {
		case srcEvent:
			b = appendPyString(b, ev)
		case srcKid:
			b = appendPyString(b, kid)
		case srcPrev:
			if placeholder {
				cutA = len(b)
			} else {
				b = appendPyString(b, unsafeString(prev))
			}
		case srcSeq:
			if placeholder {
				cutB = len(b)
			} else {
				b = strconv.AppendUint(b, seq, 10)
			}
		case srcFse:
			b = strconv.AppendUint(b, uint64(fse), 10)
		case srcSchema:
			b = append(b, '1')
		case srcTS:
			b = appendPyFloat(b, float64(ts)/1e9)
		case srcTrace:
			b = appendUUID(b, rng)
		default:
			switch v := fields[src-srcField].Value.(type) {
			case string: // validated by Append
				b = appendPyString(b, v)
			case Text:
				b = appendPyString(b, string(v))
			default:
				b, _ = appendCanonical(b, v) // validated by Append
			}
		}
	}
	return append(b, '}'), cutA, cutB
}
