"""A preview run's scenes, and which of them a producer names when approving or rejecting them
(``syncreel approve``); `tasks.review.record_approval` records each decision."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from syncreel.schemas.brief import Brief
from syncreel.schemas.errors import InputError
from syncreel.store import runs
from syncreel.tasks.plan import run_key_for
from syncreel.tasks.stage import get_runtime

SceneLanguage = tuple[str, str]  # (scene id, language)


class PreviewError(InputError):
    """A run or scene the producer named that cannot be decided on: ``subject`` is what they named."""

    def __init__(self, subject: str, problem: str):
        self.subject, self.problem = subject, problem
        super().__init__(f"{subject}: {problem}")


@dataclass(frozen=True)
class PreviewScenes:
    run_id: str
    scenes: tuple[SceneLanguage, ...]  # every scene job of the run, in its order

    def select(self, wanted: Iterable[str], *, every: bool = False) -> list[SceneLanguage]:
        """The scenes named ``SCENE`` (in every language) or ``SCENE:LANG``, or ``every`` one, each once;
        raises PreviewError for a name that is not a scene of the run."""
        chosen = list(self.scenes) if every else []
        for name in wanted:
            scene_id, _, language = name.partition(":")
            matched = [item for item in self.scenes if item[0] == scene_id and (not language or item[1] == language)]
            if not matched:
                known = ", ".join(sorted({f"{s}:{lang}" for s, lang in self.scenes}))
                raise PreviewError(name, f"not a scene of run {self.run_id}; its scenes: {known}")
            chosen += matched
        return list(dict.fromkeys(chosen))


def preview_scenes(run_id: str) -> PreviewScenes:
    """The scenes of the preview run ``run_id`` (an id or unique prefix). Raises LookupError when no run
    matches and PreviewError when the run is not a preview."""
    with get_runtime().session() as session:
        run = runs.get_run(session, run_id)
        detail = runs.run_detail(session, run.id)
        found = PreviewScenes(run.id, tuple((job["scene_id"], job["language"]) for job in detail["scene_jobs"]))
        is_preview = run.run_key == run_key_for(Brief.model_validate(run.brief), preview=True)
    if not is_preview:
        raise PreviewError(found.run_id, "not a preview run (make one with `syncreel run BRIEF --preview`)")
    return found
