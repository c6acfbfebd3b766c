"""The `syncreel` command line (cli/app.py): run a campaign, validate a brief, check and analyse files,
and look at runs."""

from syncreel.cli.app import app, main

__all__ = ["app", "main"]
