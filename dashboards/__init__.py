"""Grafana dashboards and alert rules as code; rendered JSON lands in deploy/grafana/."""
