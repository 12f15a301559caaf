"""Monitoring of the voice agents from one definition (definition.py): the Prometheus recording
rules and alerts (rules.py) and the Grafana dashboards (dashboards.py) are generated from it and
committed; `python -m deploy.monitoring` writes them, `--check` fails naming stale ones."""
