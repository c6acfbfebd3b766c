"""The dual-tower audio-video diffusion transformer and its generation backends.

`model.generator` is the interface the flows use (`get_generator(name).generate(request)`); the network
lives in `config`, `layers`, `blocks` and `transformer`, the objective and sampler in `flow_matching`,
the latent codecs in `codecs`, and the CPU backend in `builtin`. Importing this package imports no torch.
"""
