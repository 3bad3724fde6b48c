"""Results as records: the record schema and its atomic store, and the cached feature files
(bench.records.features); the contract between run and report. Depends on nothing else of bench
but the leaf bench.files."""
