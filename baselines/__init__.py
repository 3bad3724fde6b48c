"""Methods under evaluation, one module each, all behind bench.adapter.Adapter."""
