"""Prefect tasks: thin, typed wrappers over media/, model/ and store/, in the order a run meets them.

- ``stage``: the seam every task shares (runtime, progress events, cache keys, memo, records, retries)
- ``inputs``: the brief mapped to library inputs; pure (no Prefect, database or I/O)
- ``plan``: parse_brief, mark_failed (a brief bound to its run row)
- ``ingest``: ingest_reference
- ``speak``: speak_lines
- ``generate``: generate_scene
- ``qa``: qa_master, qa_deliverable, qa_character_consistency
- ``render``: assemble_spot, render_variants
- ``review``: a paused run's reviewer, a producer's approvals (called from the flow and the CLI)
- ``publish``: publish (manifest, report, artifacts, final status)
- ``report``: the HTML QA report, rendered from store.report's records
- ``preview``: a preview run's scenes, for approvals

Task modules import the seam, the inputs and the report renderer, never one another.
"""
