"""Pure audio/video functions over PyAV, ffmpeg and numpy: probe, normalize, encode, assemble, reframe,
loudness, technical QC, face landmarks and the lip-sync and sound-effect sync scores. No orchestration
here: every function runs and tests on its own."""
