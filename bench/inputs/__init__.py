"""Plain data the harness starts from: datasets (folders and manifests), assets (meshes and
Gaussians in the object frame), cameras and rigs, protocols (protocols/*.yaml).

Depends on nothing else of bench."""
