"""Methods under evaluation, one module each, all behind bench.methods.adapter.Adapter."""
