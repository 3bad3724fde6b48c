"""Methods under evaluation: the Adapter interface and Generation, the registry that finds a
method by name, worker adapters (a method's own command in its own environment, under process
supervision), precomputed outputs, and output normalization.

Depends on bench.inputs, bench.cases and bench.render."""
