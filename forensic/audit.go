package forensic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Audit operations (the pqc seed's KVAuditLog operations).
const (
	OpEncrypt            = "encrypt"
	OpDecrypt            = "decrypt"
	OpRotateKey          = "rotate_key"
	OpIsolationViolation = "isolation_violation"
)

var auditOps = map[string]bool{OpEncrypt: true, OpDecrypt: true, OpRotateKey: true, OpIsolationViolation: true}

// AuditEvent is one encrypted-offload audit event.
type AuditEvent struct {
	TenantID       string
	LayerIdx       int64
	Position       int64
	SequenceNumber uint64
	Success        bool
	Details        map[string]any
	AttackerTenant string // isolation_violation only
	TargetTenant   string // isolation_violation only
}

func (e AuditEvent) fields(op string) []Field {
	f := []Field{
		{"operation", op}, {"layer_idx", e.LayerIdx}, {"position", e.Position},
		{"sequence_number", e.SequenceNumber}, {"success", e.Success},
	}
	if e.TenantID != "" {
		f = append(f, Field{"tenant_id", e.TenantID})
	}
	if e.Details != nil {
		f = append(f, Field{"details", e.Details})
	}
	if op == OpIsolationViolation {
		f = append(f, Field{"attacker_tenant", e.AttackerTenant}, Field{"target_tenant", e.TargetTenant})
	}
	return f
}

// AuditEncrypt records an encrypt operation.
func (w *Writer) AuditEncrypt(e AuditEvent) error { return w.Append(OpEncrypt, e.fields(OpEncrypt)...) }

// AuditDecrypt records a decrypt operation.
func (w *Writer) AuditDecrypt(e AuditEvent) error { return w.Append(OpDecrypt, e.fields(OpDecrypt)...) }

// AuditRotateKey records a key rotation.
func (w *Writer) AuditRotateKey(e AuditEvent) error {
	return w.Append(OpRotateKey, e.fields(OpRotateKey)...)
}

// AuditIsolationViolation records a cross-tenant access attempt.
func (w *Writer) AuditIsolationViolation(e AuditEvent) error {
	if e.AttackerTenant == "" || e.TargetTenant == "" {
		return errors.New("forensic: isolation_violation needs attacker and target tenants")
	}
	return w.Append(OpIsolationViolation, e.fields(OpIsolationViolation)...)
}

// AuditEntry is an audit record read back from the chain.
type AuditEntry struct {
	Operation      string         `json:"operation"`
	TenantID       string         `json:"tenant_id,omitempty"`
	AttackerTenant string         `json:"attacker_tenant,omitempty"`
	TargetTenant   string         `json:"target_tenant,omitempty"`
	LayerIdx       int64          `json:"layer_idx"`
	Position       int64          `json:"position"`
	SequenceNumber uint64         `json:"sequence_number"`
	Success        bool           `json:"success"`
	Details        map[string]any `json:"details,omitempty"`
	Timestamp      float64        `json:"timestamp"`
	Seq            uint64         `json:"seq"`
	Hash           string         `json:"curr_hash"`
	File           string         `json:"file"`
	Line           int            `json:"line"`
}

// Entries reads the audit records (encrypt, decrypt, rotate_key,
// isolation_violation) of the log at path and its rotated files, newest
// first. tenant != "" keeps records whose tenant_id, attacker_tenant or
// target_tenant equals it; operation != "" keeps that operation; limit > 0
// keeps the newest limit entries.
func Entries(path string, limit int, tenant, operation string) ([]AuditEntry, error) {
	if operation != "" && !auditOps[operation] {
		return nil, fmt.Errorf("forensic: audit entries: unknown operation %q", operation)
	}
	files, err := listFiles(path)
	if err != nil {
		return nil, err
	}
	var out []AuditEntry
	for _, lf := range files {
		f, err := openNoFollow(lf.path)
		if err != nil {
			if lf.active && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("forensic: audit entries %s: %w", lf.path, err)
			}
			continue
		}
		lr := newLineReader(f, 1<<20)
		for ln := 0; ; ln++ {
			line, _, term, err := lr.next()
			if err != nil || !term {
				break
			}
			m, err := parseLine(line)
			if err != nil {
				continue
			}
			op := getString(m, "event_type")
			if !auditOps[op] || (operation != "" && op != operation) {
				continue
			}
			e := AuditEntry{Operation: op, TenantID: getString(m, "tenant_id"), AttackerTenant: getString(m, "attacker_tenant"),
				TargetTenant: getString(m, "target_tenant"), Timestamp: getFloat(m, "ts"), Hash: getString(m, "curr_hash"), File: lf.name, Line: ln}
			if tenant != "" && e.TenantID != tenant && e.AttackerTenant != tenant && e.TargetTenant != tenant {
				continue
			}
			e.LayerIdx = getInt(m, "layer_idx")
			e.Position = getInt(m, "position")
			e.SequenceNumber, _ = getUint(m, "sequence_number")
			e.Seq, _ = getUint(m, "seq")
			e.Success, _ = m["success"].(bool)
			e.Details, _ = m["details"].(map[string]any)
			out = append(out, e)
		}
		f.Close()
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// ExportAudit writes Entries(path, 0, tenant, operation) as a JSON array.
func ExportAudit(path string, dst io.Writer, tenant, operation string) error {
	es, err := Entries(path, 0, tenant, operation)
	if err != nil {
		return err
	}
	if es == nil {
		es = []AuditEntry{}
	}
	enc := json.NewEncoder(dst)
	enc.SetIndent("", "  ")
	if err := enc.Encode(es); err != nil {
		return fmt.Errorf("forensic: export audit: %w", err)
	}
	return nil
}

func getInt(m map[string]any, k string) int64 {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0
	}
	v, _ := strconv.ParseInt(string(n), 10, 64)
	return v
}
