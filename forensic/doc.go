/*
Package forensic owns kvhygiene's tamper-evident forensic chain: the
canonical encoder, the writer (group commit, fsync policy, rotation, crash
recovery), the verifier, signed checkpoints, retention (pruning) and the
audit queries of encrypted offload. The format is the seed's
(llmops-kv-hygiene tools/forensic_logger.py), byte for byte compatible in
both directions, with the additions below.

# Records and lines

A log is a set of files of newline-terminated lines, one JSON object per
line. The writer adds to every record: schema (1), ts (float epoch seconds),
trace_id (UUID v4), seq (monotonic across all files, from 0), kid (key id:
first 8 hex digits of SHA-256(HMAC key), or "none"), prev_hash (the previous
record's curr_hash in the same file; "GENESIS" for a file's first record),
then

	canonical = Canonical(record without curr_hash and hmac)
	curr_hash = hex(SHA-256(prev_hash + canonical))
	hmac      = hex(HMAC-SHA256(key, prev_hash + canonical))   (with a key)

Canonical is Python's json.dumps(obj, sort_keys=True, ensure_ascii=False,
separators=(",", ":")): keys sorted by code point at every level (equal to
UTF-8 byte order), strings escaping only '"', '\\' and C0 controls (\b \f
\n \r \t short, others \u00xx lowercase), U+2028/2029 and non-ASCII raw,
floats as Python repr (1.0, 1e+16, 1e-07, -0.0), integers exact.

Our writer lays a line out as the canonical bytes with the closing brace
replaced by the two hash fields:

	{"event_type":"free",...,"ts":1795346751.2176793,"curr_hash":"<64 hex>","hmac":"<64 hex>"}\n

so the verifier's fast path hashes line[:len-suffix] + "}" without a JSON
round trip (the suffix has a fixed length: 80 bytes plain, 154 with hmac).
Any other layout (the seed writes json.dumps defaults, ", " and ": ",
insertion order) is first projected (transcode.go: whitespace dropped, keys
sorted, scalars copied as written), which is the canonical encoding of any
line the seed wrote; a line whose projection does not hash right is parsed
and re-encoded, and that decides. Both layouts are accepted by both
verifiers. A line that hashes only after re-encoding was edited in a
meaning-preserving way, since both writers put every scalar in canonical
form: a line in our layout whose bytes are not canonical (1e-07 -> 1E-07),
or a seed-layout line with a re-spelled scalar, a duplicate key or a second
curr_hash or hmac, fails as non_canonical (the seed's verifier accepts
these; whitespace between tokens still passes).

Event types: the seed's allocate bind write reuse sanitize_start
sanitize_end quarantine free rotate, plus isolation_violation pool_assign
pool_release release_quarantine checkpoint prune recovery encrypt decrypt
rotate_key, and seal (forward-secure mode). The chain does not care;
callers choose. Callers may not set event_type, prev_hash, curr_hash, hmac,
seq, kid or fse.

Field values of type Text (a string the caller already validated as UTF-8)
and Decimal (an unsigned integer written as a string of its decimal digits,
e.g. a handle) are logged exactly as the strings they stand for.

Hashing: on amd64 CPUs with SHA-NI the writer and the verifier compute a
line's curr_hash and hmac together, the keyless verifier two consecutive
lines together, and the keyed verifier the outer blocks of two consecutive
lines' hmacs together, with a two-lane SHA-256 (sha2x*.go; the assembly is
generated from Go's own SHA-NI block function by
benchmarks/forensic/gen_sha2x.py): one message is bound by the latency of the
SHA-NI rounds, so two interleaved cost little more. Elsewhere crypto/sha256
and crypto/hmac are used. Both are tested against crypto/sha256 and
crypto/hmac (FuzzSHA2x). The verifier compares a digest with a line's 64 hex
digits as it encodes them, in constant time (hex*.go; SSSE3/AVX assembly on
amd64).

# Files, rotation, locking

The active file is <dir>/<stem>.log (mode 0600, directory 0700; a symlink
is refused). One writer per log: Open takes an exclusive flock on
<stem>.log.lock and fails with ErrLocked otherwise. When a record would push
the active file past MaxBytes, the file is fsynced, a checkpoint is taken
(if configured), and it is renamed (renameat2 RENAME_NOREPLACE: never
overwriting) to

	<stem>-<unix seconds>-<seq of the next record, 12 digits>.log

(a "-<n>" suffix is added only if that name is taken), so many rotations per
second get distinct names that sort by name in rotation order. The new
active file starts with a rotate record {prev_file, prev_file_last_hash}
whose prev_hash is "GENESIS", as the seed does. VerifyAll orders files by
(seconds, seq, suffix); the seed's own <stem>-<seconds>.log names sort
first within a second.

# Durability and recovery

Append validates and enqueues (AppendConst, for field lists whose keys are
constants of the caller's code, validates only the values there; the writer
checks each distinct key list once and stops on a bad one, before the
record holding it is written); a writer goroutine encodes, hashes and
writes batches. Once 1 MiB of a batch is chained (fsync none or interval)
it is handed to a flusher goroutine, which writes it while the writer goes
on, and so is every batch after which a routine interval fsync is due: the
flusher runs that fsync after the write, and the records become durable
when the writer collects the result. After each write without an fsync the
flusher asks the kernel to start writing those bytes back
(sync_file_range SYNC_FILE_RANGE_WRITE), so that the fsync at rotation
finds little left to do, and after every flusher write it drops the file's
pages more than 16 MiB behind its end from the page cache once they are
clean (posix_fadvise DONTNEED; an audit log is read rarely, and host memory
is wanted for KV offload); a rotated file leaves the cache whole after its
fsync. Neither changes a durability promise. At most one
write is in flight; it completes before any other fsync, rotation,
checkpoint, synchronous write or idle park, and a failed deferred fsync is
handled like any failed fsync (reported, never retried, the file rotated
away).
Unless someone waits for durability, the writer lingers up to 200 us so
batches grow, and parks after 20 ms idle (only then does an Append pay for
waking it). Batches of 64 records or more go through a pipeline: records are
encoded in chunks, with the prev_hash and seq values left out, by helper
goroutines and the writer itself (each encoder sorts and encodes the keys of
a distinct field list once and keeps that template), while the writer
assembles, chains and HMACs the chunks already encoded, in order, a line's
hash and HMAC computed together on two SHA-256 lanes; the bytes equal those
of the one-record path. Fsync policies: none (fsync only on Flush,
Checkpoint, rotation, Close), interval (at most every FsyncInterval, 10 ms
default) and always (Append returns after the fsync covering its record;
concurrent appenders share fsyncs). A failed fsync is never retried: the
file is rotated away, OnError and Stats.FsyncErrors report it and the
FsyncAlways appenders of the affected records get ErrFsync.

Open reads the active file whole (however long its last record is). Everything after the last complete record
(an unterminated line, or lines that are not JSON records) is a torn tail:
it is copied to <stem>.log.broken-<unix>-<n>, cut, and a recovery record
{removed_bytes, removed_offset, removed_sha256, broken_file, reason} is
appended. An empty active file next to rotated files (a crash between
rename and rotate record) gets its rotate record on open.

# Checkpoints

With CheckpointDir and an Ed25519 note signer key (GenerateKey, x/mod
sumdb/note), the writer signs a checkpoint at every rotation, every
CheckpointEvery records, every CheckpointInterval and at Close. The note
body is a C2SP tlog-checkpoint:

	<origin, default "kvhygiene<abs path>">
	<size: number of records covered, seq 0..size-1>
	<base64 RFC 6962 Merkle root>
	head <curr_hash of record size-1>

The Merkle leaves are the records' 32-byte binary curr_hash values in seq
order (leaf hash SHA-256(0x00 || curr_hash)). Files are
checkpoint-<size, 20 digits>.note, with an unsigned sidecar .state (JSON:
compact range hashes, head, file and byte offset where record <size>
starts) authenticated by recomputing its root. The signer key never enters
a record. VerifyAll with CheckpointDir and PublicKey recomputes the tree
over the records and checks every checkpoint: a log shorter than a signed
size is truncated_against_checkpoint, a differing root or head (a rewrite by
an HMAC key holder) is checkpoint_mismatch. VerifyIncremental starts from
the newest checkpoint's state and checks only later records. After pruning,
the tree resumes from the checkpoint taken at the rotation that ended the
last pruned file.

# Retention

Prune removes (or archives into ArchiveDir, never overwriting) whole rotated
files, oldest first and only as a prefix, never the active file. Before
touching anything it appends, through a Writer (so it holds the flock), and
fsyncs a prune record

	{"event_type":"prune","pruned":[{"file","last_hash","first_seq","last_seq","records"}...],...}

VerifyAll then accepts that the oldest remaining file's rotate record names
a missing file exactly when a prune record declares it with the same last
hash, and lists the declared gap in Result.Pruned.

# Forward-secure MAC

Optional, instead of a static HMAC key (Options.FSStatePath; Bellare–Yee
key evolution). Time is cut into epochs: epoch e covers
[start + e*len, start + (e+1)*len). The key of epoch 0 is 32 random bytes
k_0 and

	k_{e+1} = HMAC-SHA256(k_e, "kvhygiene fs evolve" || be64(e+1))

so any later key follows from an earlier one and no earlier key from a
later one. Every record then carries fse (its epoch, an integer) and kid
"fs:<id>" (id = first 8 hex digits of SHA-256("kvhygiene fs id" || k_0)),
and its hmac is HMAC-SHA256(k_fse, prev_hash + canonical): the same bytes as
the static-key HMAC, so the hash chain and the seed's plain verification
are unchanged.

Seals. When an epoch ends the writer appends a record

	{"event_type":"seal","sealed_from":e,"sealed_to":e,"fse":e,...}

MACed with k_e (binding the chain head through prev_hash), even for an
epoch with no records, makes it durable (fsync), and only then evolves the
key. An idle writer wakes at the boundary to do so. Open seals every epoch
that elapsed while the writer was down, before writing anything else: one
seal record per epoch up to 1024 epochs, beyond that one range seal
(sealed_from = fse = the first missed epoch, sealed_to = the last) MACed with
the key of its first epoch. More than 2^26 elapsed epochs is an error from
Open (generate a new key, start a new log). A crash between the seal's
fsync and the state update is completed by Open: when the log's last record
verifies with the state's key evolved forward, the state catches up. Open
refuses a state file of another key, a state behind the log that it cannot
reconcile that way, a state ahead of the log (seals missing: the log was
cut), an FS state on a log whose last record is not FS, and a writer without
FSStatePath on an FS log.

State file (GenerateFSKey / kvgate fs-keygen; mode 0600, never overwritten
on creation, symlinks refused, flocked by the writer). 112 bytes, big
endian:

	0  "KVHFSST1"   8  version (u32, 1)   12 reserved (u32, 0)
	16 start (s64 unix seconds)           24 epoch length (s64 seconds)
	32 key id (4 bytes)                   36 reserved (4 bytes, 0)
	40 current epoch (u64)                48 current key k_e (32 bytes)
	80 SHA-256 of bytes 0..79

Evolving rewrites bytes 40..111 in place (one pwrite at the same offset,
then fsync), so the previous key's bytes are overwritten in the file; the
in-memory copies the package owns are zeroed (hash states derived from a key
are dropped to the garbage collector: in-memory erasure in Go is best
effort). Copy-on-write or log-structured file systems (btrfs, ZFS, f2fs),
snapshots, backups and SSD wear levelling can keep old blocks: keep the
state on a file system that overwrites in place and out of backups. The
state holds k_0 until the first evolution (end of epoch 0).

Verification key (returned once by GenerateFSKey, never stored by the
writer; give it to the auditor):

	kvh-fs1:<64 lowercase hex k_0>:<start unix seconds>:<epoch seconds>

parsed strictly by ParseFSKey (epoch 1 s to 366 days). With
VerifyOptions.FSVerifyKey the verifier derives k_e and checks: every record
has an fse and an hmac valid under k_fse (fs_bad_mac); epochs never go
backwards, no epoch lies more than one epoch after now, a record of epoch e
never follows the seal of e, seals are well formed and not repeated
(fs_epoch_order); every epoch from 0 (or, when the verified records do not
start at seq 0 — pruned, one file, incremental — from the first record's
epoch) up to the last record's epoch minus one has a seal placed before any
later record (fs_missing_seal); VerifyAll also fails (fs_missing_seal) a
log whose first record has seq > 0 unless it is the rotate record of a
declared prune gap. With VerifyOptions.FSNow it also requires
seals for every epoch that ended one epoch or more before FSNow (fs_stale):
that is what exposes a log cut back by someone holding a later key, which
otherwise looks like a writer that stopped. Consequences: an attacker who
steals the state in epoch e can neither rewrite nor delete a record of an
epoch < e, nor forge the missing seals; only records of epochs >= e and a
tail cut (without FSNow) are in their power. A pruned prefix cannot be
checked: its prune record is MACed in the epoch it was written, so the
holder of a later key could forge a prune of the whole history; verify
before pruning (kvgate verify does) and combine with signed checkpoints on
another host, which also give non-repudiation. FS verification runs on
one core (the parallel chunked path is used only without it).

# Verification results

Failures carry the file, the 0-based line (blank lines count, as in the
seed) and a reason: bad_hash, bad_hmac, missing_hmac (a key is configured
and the record has none: the seed skips such records), seq_gap,
rotation_link_mismatch, missing_rotate, truncated_against_checkpoint,
checkpoint_mismatch, checkpoint_invalid, checkpoint_unverifiable,
malformed_json (including a torn last line), non_canonical, and in
forward-secure mode fs_bad_mac, fs_missing_seal, fs_epoch_order, fs_stale. HMACs are
compared in constant time. The chain continues from each line's claimed
curr_hash, so one edited line yields one failure at that line.
*/
package forensic
