// Package deploy holds operations material: Kubernetes manifests (k8s/),
// Prometheus scrape configuration and alert rules (prometheus/) and a
// Grafana dashboard (grafana/). It has no Go API; its tests check that the
// dashboard and alerts only use metric names the library registers, that
// every manifest names the one HMAC secret, and that containers run as
// non-root with a read-only root file system.
package deploy
