"""From records to tables: aggregation (set metrics), leaderboards, paper tables, the HTML
report with its plots, published numbers and the drift gate.

Depends on bench.records and bench.metrics."""
