"""Observability: Prometheus metrics, consumer lag in messages and seconds, health checks.

`metrics` holds every metric behind a small observer API the stages call; `lag` measures
the group's lag from Kafka; `health` decides readiness; `server` serves /metrics, /healthz
and /readyz; `monitor` runs them inside the worker as a Faust sensor; `timing` carries the
times the latency histograms need across the seat-facts topic (pure).
"""
