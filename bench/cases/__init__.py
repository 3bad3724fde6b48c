"""The amodal inputs a method sees: occlusion simulation, 2D occluder masks, the papers' input
encodings, AmodalCase, and the on-disk case format (casefile) for other environments.

Depends on bench.inputs and bench.render."""
