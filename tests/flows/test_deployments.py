"""deployments/: the prefect.yaml and the Kubernetes GPU job template are consistent (no server needed)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"


def test_prefect_yaml_deploys_three_flows_on_the_two_pools():
    config = yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())
    by_entrypoint = {d["entrypoint"]: d for d in config["deployments"]}
    pools = {entrypoint: d["work_pool"]["name"] for entrypoint, d in by_entrypoint.items()}
    assert pools == {
        "flows/campaign.py:produce_campaign": "syncreel-cpu",
        "flows/scene.py:generate_scene_flow": "syncreel-gpu",
        "flows/inbox.py:campaign_inbox": "syncreel-cpu",
    }
    for entrypoint, deployment in by_entrypoint.items():
        assert deployment["enforce_parameter_schema"] is True
        path, name = entrypoint.split(":")
        flow = getattr(importlib.import_module("syncreel." + path.removesuffix(".py").replace("/", ".")), name)
        assert deployment["name"] == "production" and flow.name
    campaign = by_entrypoint["flows/campaign.py:produce_campaign"]
    assert campaign["work_pool"]["job_variables"]["env"]["SYNCREEL_GPU_DEPLOYMENT"] == "generate-scene/production"
    assert campaign["triggers"][0]["expect"] == ["syncreel.brief.changed"]
    assert by_entrypoint["flows/inbox.py:campaign_inbox"]["schedules"][0]["cron"] == "*/5 * * * *"


def test_kubernetes_gpu_template_limits_gpus_and_declares_every_placeholder():
    template = json.loads((DEPLOYMENTS / "k8s-gpu-job-template.json").read_text())
    used = set(re.findall(r"\{\{ (\w+) \}\}", json.dumps(template["job_configuration"])))
    assert used <= set(template["variables"]["properties"]), used - set(template["variables"]["properties"])
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
    assert template["variables"]["properties"]["gpus"]["default"] == 1
    assert template["variables"]["properties"]["node_selector"]["default"] == {"nvidia.com/gpu.present": "true"}


def test_automations_file_validates_as_prefect_automations():
    from prefect.events.schemas.automations import AutomationCore

    automations = yaml.safe_load((DEPLOYMENTS / "automations.yaml").read_text())["automations"]
    (crash,) = [AutomationCore.model_validate(a) for a in automations]
    assert crash.trigger.posture == "Proactive" and crash.actions[0].type == "change-flow-run-state"
