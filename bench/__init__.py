"""amodal-bench: an evaluation harness for amodal 3D generation.

The flow (DESIGN.md): dataset manifest -> Asset -> occlusion -> AmodalCase -> adapter ->
Generation -> rig rendering -> metrics -> records -> leaderboard.
"""

__version__ = "0.1.0"
