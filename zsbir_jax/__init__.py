"""zsbir_jax: zero-shot sketch-based image retrieval in JAX (see README.md for the package map).

Shared modules live here: `domains` (SKETCH/PHOTO), `sharding` (mesh and shardings) and
`inference` (a jitted function over every record of a list); they import no package below.
"""
