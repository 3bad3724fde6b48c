"""Results as records: the record schema and its atomic store, the contract between run and
report. Depends on nothing else of bench."""
