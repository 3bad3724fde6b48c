"""Methods under evaluation: the Adapter interface and Generation (adapter), the registry that
finds a method by name (registry), worker adapters (worker: a method's own command in its own
environment, under process supervision, supervise), precomputed outputs (precomputed), and
output normalization (normalize). Imports run one way: registry -> worker -> precomputed ->
adapter, worker -> supervise (which knows nothing of cases or methods).

Depends on bench.inputs, bench.cases and bench.render."""
