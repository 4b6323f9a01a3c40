//! Prometheus for the integration tests: a real `prometheus` (Debian package) started on a free
//! loopback port with the scrape and relabel rules of `contrib/prometheus/prometheus.yml`, and
//! its HTTP query API.
