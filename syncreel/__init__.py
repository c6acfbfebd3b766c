"""syncreel: ad campaigns with synchronized AI video and sound.

The one import name the project installs. Its subpackages live in the repository's top-level folders
(``pyproject.toml`` maps them): ``syncreel.cli`` (``cli/``), ``syncreel.flows`` (``flows/``),
``syncreel.tasks``, ``syncreel.media``, ``syncreel.model``, ``syncreel.store`` and ``syncreel.schemas``.
docs/architecture.md draws how they depend on each other.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("syncreel")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
