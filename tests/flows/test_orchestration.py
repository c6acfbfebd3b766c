"""Production orchestration with real processes on 127.0.0.1: a Prefect server on Postgres (started by
`syncreel server --deploy`), two GPU-pool process workers and one CPU-pool worker, campaigns submitted
through the produce-campaign deployment with `syncreel submit`.

One stack per module (it takes a minute to start on two cores); the tests run in file order, and the
SIGKILL test leaves one GPU worker for the inbox test. Marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.stack import ROOT, Stack, Worker, kill_tree, process_tree, running_stack, tiny_brief, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("orchestration")
    (folder / "inbox").mkdir()
    settings = {
        "SYNCREEL_STORAGE_URL": f"file://{folder}/assets",
        "SYNCREEL_WORK_DIR": str(folder / "work"),
        "SYNCREEL_INBOX_URL": f"file://{folder}/inbox",
        # Submitted briefs arrive through the API, so their folders are read only inside the roots.
        "SYNCREEL_REFERENCE_ROOTS": json.dumps([str(folder)]),
    }
    workers = {
        "gpu-0": Worker("syncreel-gpu", 1, {"CUDA_VISIBLE_DEVICES": "0"}),
        "gpu-1": Worker("syncreel-gpu", 1, {"CUDA_VISIBLE_DEVICES": "1"}),
        "cpu-0": Worker("syncreel-cpu", 4),
    }
    with running_stack(postgres_url, folder, settings, workers) as stack:
        yield stack


def check_complete(
    stack: Stack, outcome: dict, campaign: str, scenes: int, flow_runs: tuple[str, ...] = ("COMPLETED",)
) -> str:
    """The campaign produced once and settled; ``flow_runs``: the states of its produce-campaign flow runs."""
    assert outcome["flow_run_state"] == "Completed", outcome
    assert outcome["status"] in ("succeeded", "needs_review"), outcome
    run_id = outcome["run_id"]
    assert sorted((d["language"], d["platform"]) for d in outcome["deliverables"]) == [
        ("en", "square"),
        ("en", "tiktok"),
    ]
    for d in outcome["deliverables"]:
        assert Path(d["uri"].removeprefix("file://")).stat().st_size > 1000
    # syncreel's run state, in Postgres: finished, every scene settled, one succeeded generation per scene.
    assert stack.state(f"select status from campaign_runs where id = '{run_id}'") == [(outcome["status"],)]
    assert stack.state(
        f"select count(*) from scene_jobs where run_id = '{run_id}' and status not in ('passed', 'needs_review')"
    ) == [(0,)]
    assert stack.state(
        f"select count(*), count(distinct cache_key), count(distinct scene_id) from generations "
        f"where run_id = '{run_id}' and status = 'succeeded'"
    ) == [(scenes, scenes, scenes)]
    assert stack.state(f"select count(*) from deliverables where run_id = '{run_id}'") == [(2,)]
    # Prefect's own state, in its Postgres database: the campaign's flow runs.
    states = stack.prefect(
        "select fr.state_type from flow_run fr join flow f on f.id = fr.flow_id where f.name = 'produce-campaign' "
        f"and fr.parameters->'brief'->>'campaign_id' = '{campaign}' order by fr.state_type"
    )
    assert tuple(state for (state,) in states) == tuple(sorted(flow_runs)), states
    return run_id


def assert_one_at_a_time(runs: list[tuple]) -> None:
    by_worker: dict[str, list[tuple]] = {}
    for run in runs:
        by_worker.setdefault(run[2], []).append(run)
    for worker, mine in by_worker.items():
        mine.sort(key=lambda r: r[4])
        for before, after in zip(mine, mine[1:], strict=False):
            assert before[5] <= after[4], f"{worker} ran {before[0]} and {after[0]} at once"


def test_six_scene_campaign_through_the_deployment_uses_both_gpu_workers(stack: Stack):
    brief = tiny_brief(stack.folder / "six.yaml", "orch-six", scenes=6)
    started = time.monotonic()
    done = stack.syncreel("submit", str(brief), "--json", "--out", str(stack.folder / "out"))
    wall = time.monotonic() - started
    assert done.returncode in (0, 3), done.stdout + done.stderr
    outcome = json.loads(done.stdout)
    check_complete(stack, outcome, "orch-six", scenes=6)
    assert len(list((stack.folder / "out" / "orch-six" / "en").glob("*.mp4"))) == 2

    runs = stack.scene_runs("orch-six")
    assert len(runs) == 6 and {r[1] for r in runs} == {"COMPLETED"}, runs
    assert {r[2] for r in runs} == {"gpu-0", "gpu-1"}, runs
    assert {(r[2], r[3]) for r in runs} == {("gpu-0", "0"), ("gpu-1", "1")}  # each worker on its own GPU
    assert_one_at_a_time(runs)
    flow_run_s = sum((r[5] - r[4]).total_seconds() for r in runs) / len(runs)
    generate_s = stack.state("select avg(seconds) from generations where status = 'succeeded'")[0][0]
    print(
        f"6 scenes in {wall:.1f} s: "
        + ", ".join(f"{r[0]}@{r[2]}" for r in runs)
        + f"; per scene: flow run {flow_run_s:.1f} s, of which generation {generate_s:.2f} s"
    )


def test_brief_changed_event_rerenders_variants_without_generating(stack: Stack):
    data = yaml.safe_load((stack.folder / "six.yaml").read_text())
    data["platforms"].append("youtube")  # a platform added after the campaign was produced
    data["platform_overrides"]["youtube"] = {"width": 256, "height": 144}
    edited = stack.folder / "six-edited.yaml"
    edited.write_text(yaml.safe_dump(data, sort_keys=False))
    generations = stack.state("select count(*) from generations")
    started = time.monotonic()
    emitted = subprocess.run(
        [sys.executable, "-m", "prefect", "event", "emit", "syncreel.brief.changed"]
        + ["--resource-id", "syncreel.brief.orch-six", "--payload", json.dumps({"brief_uri": str(edited)})],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert emitted.returncode == 0, emitted.stdout + emitted.stderr

    def rerender_state() -> str | None:
        rows = stack.prefect(
            "select fr.state_type from flow_run fr join flow f on f.id = fr.flow_id where f.name = 'produce-campaign' "
            f"and fr.parameters->>'brief' = '{edited}'"
        )
        return rows[0][0] if rows and rows[0][0] in ("COMPLETED", "FAILED", "CRASHED") else None

    assert wait_for(rerender_state, 600, "the event-triggered re-render", 2) == "COMPLETED"
    run_id = stack.state("select id from campaign_runs where campaign_id = 'orch-six' order by created_at desc")[0][0]
    assert stack.state(f"select platform from deliverables where run_id = '{run_id}' order by 1") == [
        ("square",),
        ("tiktok",),
        ("youtube",),
    ]
    assert stack.state("select count(*) from generations") == generations  # every master came from the memo
    print(f"re-render with a new platform: {time.monotonic() - started:.1f} s from the event, 0 scenes generated")


def test_schema_violation_is_refused_by_the_server_with_the_field(stack: Stack):
    import httpx

    api = stack.env["PREFECT_API_URL"]
    deployment = httpx.get(f"{api}/deployments/name/produce-campaign/production").json()
    brief = yaml.safe_load(tiny_brief(stack.folder / "bad.yaml", "orch-bad", scenes=1).read_text())
    brief["generation"]["steps"] = -3
    answer = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"brief": brief}})
    assert answer.status_code == 409, answer.text
    assert "steps" in answer.text
    names = [name for (name,) in stack.prefect("select name from automation")]
    assert names.count("syncreel-crash-silent-flow-runs") == 1, names  # created once by `syncreel server`


def test_two_submits_of_one_brief_at_once_produce_it_once(stack: Stack):
    brief = tiny_brief(stack.folder / "twice.yaml", "orch-twice", scenes=2)
    command = [sys.executable, "-m", "syncreel.cli", "submit", str(brief), "--json"]
    submits = [
        subprocess.Popen(command, env=stack.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        answers = [submit.communicate(timeout=600) for submit in submits]
    finally:
        for submit in submits:
            if submit.poll() is None:
                submit.kill()
    codes = sorted(submit.returncode for submit in submits)
    outcomes = [(submit.returncode in (0, 3), out, err) for submit, (out, err) in zip(submits, answers, strict=True)]
    produced = [out for done, out, _ in outcomes if done]
    refused = [err + out for done, out, err in outcomes if not done]
    # One flow run claims the campaign; the other finds it held by a live owner and says by whom.
    assert len(produced) == 1 and len(refused) == 1, (codes, answers)
    assert "is being produced by" in refused[0], refused[0][-2000:]
    run_id = check_complete(stack, json.loads(produced[0]), "orch-twice", scenes=2, flow_runs=("COMPLETED", "FAILED"))
    assert stack.state(f"select attempts, owner from campaign_runs where id = '{run_id}'") == [(1, None)]
    for (uri,) in stack.state(f"select uri from assets where uri like 'file://{stack.folder}/%'"):
        assert Path(uri.removeprefix("file://")).is_file(), uri


def test_a_review_suspends_the_run_frees_its_worker_and_the_answer_resumes_it(stack: Stack):
    import httpx

    api = stack.env["PREFECT_API_URL"]
    brief = yaml.safe_load(tiny_brief(stack.folder / "review.yaml", "orch-review", scenes=2).read_text())
    # A lip-sync confidence no clip reaches: the talking scene is flagged and the run waits for a reviewer.
    brief["qa"] = {"max_regenerations": 0, "min_lipsync_confidence": 2.0, "on_review": "pause", "review_timeout_s": 900}
    deployment = httpx.get(f"{api}/deployments/name/produce-campaign/production").json()
    created = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"brief": brief}})
    assert created.status_code == 201, created.text
    flow_run = created.json()["id"]

    def state() -> tuple:
        return stack.prefect(f"select state_type, state_name from flow_run where id = '{flow_run}'")[0]

    wait_for(lambda: state() == ("PAUSED", "Suspended"), 600, "the run to suspend for its review")
    cpu = stack.workers["cpu-0"].pid
    wait_for(lambda: process_tree(cpu) == [cpu], 60, "the CPU worker to have no flow-run process left")
    ((run_id, status, owner, attempts),) = stack.state(
        "select id, status, owner, attempts from campaign_runs where campaign_id = 'orch-review'"
    )
    assert (status, owner, attempts) == ("needs_review", None, 1)

    answer = httpx.post(
        f"{api}/flow_runs/{flow_run}/resume",
        json={"run_input": {"approve": True, "reviewer": "dana", "note": "lips read fine on set"}},
    )
    assert answer.status_code in (200, 201) and answer.json()["status"] == "ACCEPT", answer.text
    wait_for(lambda: state()[0] in ("COMPLETED", "FAILED", "CRASHED"), 600, "the resumed run to finish")
    assert state()[0] == "COMPLETED", state()
    assert stack.state(f"select status, owner, attempts from campaign_runs where id = '{run_id}'") == [
        ("succeeded", None, 2)
    ]
    ((verdict, message),) = stack.state(
        f"select verdict, message from qa_results where run_id = '{run_id}' and \"check\" = 'human_review'"
    )
    assert verdict == "pass" and "dana" in message
    assert stack.state(f"select count(*) from deliverables where run_id = '{run_id}'") == [(2,)]
    # The resumed run replayed the campaign: both scenes' generations were found, none made again.
    assert stack.state(
        f"select count(distinct cache_key) from generations where run_id = '{run_id}' and status = 'succeeded'"
    ) == [(2,)]


def test_sigkill_of_a_gpu_worker_holding_a_scene_loses_and_duplicates_nothing(stack: Stack):
    brief = tiny_brief(stack.folder / "kill.yaml", "orch-kill", scenes=4)
    submit = subprocess.Popen(
        [sys.executable, "-m", "syncreel.cli", "submit", str(brief), "--json"],
        env=stack.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def busy_worker() -> str | None:
            running = [r for r in stack.scene_runs("orch-kill") if r[1] == "RUNNING" and r[2]]
            if not running:  # (syncreel's tables exist by then: the campaign flow migrated them)
                return None
            generating = stack.state(
                "select count(*) from scene_jobs j join campaign_runs r on r.id = j.run_id "
                "where r.campaign_id = 'orch-kill' and j.status = 'generating'"
            )[0][0]
            return running[0][2] if generating else None

        victim = wait_for(busy_worker, 400, "a GPU worker mid-scene")
        killed_at = time.monotonic()
        kill_tree(stack.workers[victim].pid)
        stack.workers[victim].wait(timeout=10)
        out, err = submit.communicate(timeout=600)
    finally:
        if submit.poll() is None:
            submit.kill()
    assert submit.returncode in (0, 3), out + err
    outcome = json.loads(out)
    check_complete(stack, outcome, "orch-kill", scenes=4)
    runs = stack.scene_runs("orch-kill")
    crashed = [r for r in runs if r[1] == "CRASHED"]
    assert len(crashed) == 1 and crashed[0][2] == victim, runs
    completed = [r for r in runs if r[1] == "COMPLETED"]
    assert sorted(r[0].split("-")[0] for r in completed) == ["s1", "s2", "s3", "s4"], runs
    retried = crashed[0][0].rsplit("-p", 1)[0]
    assert [r[2] for r in completed if r[0].startswith(retried)] != [victim], runs
    assert_one_at_a_time([r for r in runs if r[1] == "COMPLETED"])
    print(
        f"killed {victim} on {crashed[0][0]}; finished {time.monotonic() - killed_at:.1f} s later: "
        + ", ".join(f"{r[0]}@{r[2]}:{r[1]}" for r in runs)
    )


def test_inbox_schedule_produces_each_brief_once(stack: Stack):
    assert stack.prefect(
        "select s.schedule->>'cron' from deployment_schedule s join deployment d on d.id = s.deployment_id "
        "join flow f on f.id = d.flow_id where f.name = 'campaign-inbox'"
    ) == [("*/5 * * * *",)]
    inbox = stack.folder / "inbox"
    for name in ("inbox-a", "inbox-b"):
        tiny_brief(inbox / f"{name}.yaml", name, scenes=1)
    kept = (inbox / "inbox-a.yaml").read_text()

    def campaign_runs() -> list[tuple]:
        return stack.prefect(
            "select fr.parameters->'brief'->>'campaign_id', fr.state_type from flow_run fr join flow f on "
            "f.id = fr.flow_id where f.name = 'produce-campaign' and fr.tags ? 'inbox' order by 1"
        )

    def inbox_pass() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "run", "campaign-inbox/production", "--watch"],
            env=stack.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    inbox_pass()
    wait_for(lambda: [s for _, s in campaign_runs()] == ["COMPLETED", "COMPLETED"], 600, "both inbox campaigns", 2)
    assert [c for c, _ in campaign_runs()] == ["inbox-a", "inbox-b"]
    assert sorted(p.name.split("-")[1] for p in (inbox / "handled").iterdir()) == ["a", "b"]
    assert not list(inbox.glob("*.yaml"))

    (inbox / "inbox-a-again.yaml").write_text(kept)  # the same content dropped again: not a new campaign
    inbox_pass()
    inbox_pass()
    assert [c for c, _ in campaign_runs()] == ["inbox-a", "inbox-b"]
    assert stack.state(
        "select campaign_id, count(*) from campaign_runs where campaign_id like 'inbox-%' group by 1 order by 1"
    ) == [("inbox-a", 1), ("inbox-b", 1)]
