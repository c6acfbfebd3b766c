"""Pure audio/video functions over PyAV, ffmpeg and numpy: probe, normalize, encode, assemble, reframe,
loudness and technical QC. No orchestration here: every function runs and tests on its own."""
