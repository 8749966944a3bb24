package core

import (
	"time"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// retentionEvery is how often the retention loop looks at the log.
var retentionEvery = time.Second

// retainer applies the configured retention to rotated log files: after
// every rotation for the count limit, and on every tick when an age limit is
// set. forensic.Writer.Prune writes the prune record before removing
// anything and does nothing (no record) when nothing is due.
func (t *Tracer) retainer(every time.Duration) {
	defer close(t.keepDone)
	tk := time.NewTicker(every)
	defer tk.Stop()
	lastRot := ^uint64(0) // run once at start: files may already be due
	for {
		select {
		case <-t.keepStop:
			return
		case <-tk.C:
			rot := t.w.Stats().Rotations
			if rot == lastRot && t.cfg.RetentionDays == 0 {
				continue
			}
			if err := t.pruneOnce(); err == nil {
				lastRot = rot
			}
		}
	}
}

// pruneOnce runs one retention pass; failures are counted and retried on the
// next tick.
func (t *Tracer) pruneOnce() error {
	rep, err := t.w.Prune(forensic.PruneOptions{
		RetentionDays: t.cfg.RetentionDays,
		MaxRotated:    t.cfg.MaxRotated,
		ArchiveDir:    t.cfg.ArchiveDir,
		HMACKey:       t.cfg.HMACKey,
	})
	if err != nil {
		t.m.pruneErrors.Inc()
		return err
	}
	t.m.prunedFiles.Add(float64(len(rep.Removed)))
	return nil
}
