"""PCS, GENA3D's VLM-judged Perceptual Coherence Score: the prompt, strict parsing, the verdict
cache, HTTP and transformers backends. Depends on bench.records."""
