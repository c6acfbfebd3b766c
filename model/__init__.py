"""The dual-tower audio-video diffusion transformer and its generation backends.

`model.generator` is the interface the flows use and `model.backends` holds its implementations by name
(`get_generator(name).generate(request)`): the dual-tower model (`builtin`) and LTX-2 (`ltx2`). The
network lives in `config`, `layers`, `blocks` and `transformer`, the objective and sampler in
`flow_matching`, the latent codecs in `codecs`. Importing this package imports no torch; docs/model.md
describes the built-in model.
"""
