"""Serve and KubeRay config files: valid against their schemas and consistent with the code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REVIEW_CONFIG = REPO / "deployments" / "configs" / "review.yaml"
SERVE_CONFIGS = sorted(p for p in (REPO / "deployments" / "configs").glob("*.yaml") if p != REVIEW_CONFIG)
DEPLOYMENT_NAMES = {"Ingress", "TextEncoder", "ImageEncoder", "AudioEncoder", "VideoEncoder", "FusionHead"}


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_config_validates_against_serve_schema(path):
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    app = schema.applications[0]
    assert app.import_path == "deployments.app:build_app" and "checkpoint" in app.args
    assert {d.name for d in app.deployments} <= DEPLOYMENT_NAMES


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_policy_user_config_in_serve_config_is_a_valid_policy(path):
    from tripwire.policy import Policy, Taxonomy

    config = yaml.safe_load(path.read_text())
    [ingress] = [d for d in config["applications"][0]["deployments"] if d["name"] == "Ingress"]
    policy = Policy.load(REPO / ingress["user_config"]["policy_path"])
    policy.check_taxonomy(Taxonomy.load())


@pytest.mark.parametrize("name, kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob"),
                                        ("rayjob-scan.yaml", "RayJob"),
                                        ("rayjob-loop.yaml", "RayJob")])
def test_kuberay_manifests_parse(name, kind):
    doc = yaml.safe_load((REPO / "cluster" / name).read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind
    spec = doc["spec"].get("rayClusterSpec", doc["spec"])
    assert spec["rayVersion"] == "2.60.0"
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_rayservice_embeds_the_production_serve_config():
    from ray.serve.schema import ServeDeploySchema

    doc = yaml.safe_load((REPO / "cluster/rayservice.yaml").read_text())
    assert doc["kind"] == "RayService"
    embedded = yaml.safe_load(doc["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((REPO / "deployments/configs/prod.yaml").read_text())
    ServeDeploySchema.model_validate(embedded)


def test_production_config_autoscales_and_puts_encoders_on_gpus():
    config = yaml.safe_load((REPO / "deployments/configs/prod.yaml").read_text())
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    assert all("autoscaling_config" in d for d in deployments.values())
    assert all(deployments[n]["ray_actor_options"].get("num_gpus", 0) > 0 for n in ("TextEncoder", "ImageEncoder"))
    assert all(d.get("max_queued_requests", -1) > 0 for d in deployments.values())


def test_every_deployment_bounds_its_queue_and_asks_rejected_callers_to_retry():
    """The code's defaults, which a Serve config only overrides: no deployment queues without bound, each
    can hold a whole batch in flight, and a rejection is a 503 with ``Retry-After``."""
    from deployments import app

    for deployment in (app.ModalityEncoder, app.SplitEncoder, app.FusionHead, app.Ingress):
        assert 0 < deployment.max_queued_requests, deployment.name
        assert deployment.max_ongoing_requests >= app.DEFAULT_BATCH_SIZE, deployment.name
        assert deployment.backpressure_config.status_code == 503, deployment.name
        assert deployment.backpressure_config.retry_after_s, deployment.name


@pytest.mark.parametrize("name", ["scan.yaml", "scan-gpu.yaml"])
def test_scan_configs_validate(name):
    from tripwire.common.config import load_yaml
    from tripwire.scan.config import ScanConfig

    config = load_yaml(ScanConfig, REPO / "pipelines" / "configs" / name)
    assert config.actors >= 1 and config.batch_size >= 1


def test_scan_rayjob_runs_the_scan_command_with_a_committed_config():
    """The RayJob's entrypoint parses as a ``tripwire scan`` command line whose config file exists and validates."""
    import shlex

    from entrypoints.cli import build_parser
    from tripwire.common.config import load_yaml
    from tripwire.scan.config import ScanConfig

    doc = yaml.safe_load((REPO / "cluster" / "rayjob-scan.yaml").read_text())
    command = shlex.split(doc["spec"]["entrypoint"])
    assert command[:2] == ["tripwire", "scan"]
    parser, _ = build_parser()
    args = parser.parse_args(command[1:])
    load_yaml(ScanConfig, REPO / args.config)
    assert args.out.startswith("s3://") and args.manifest.startswith("s3://")
    gpu_groups = [g for g in doc["spec"]["rayClusterSpec"]["workerGroupSpecs"]
                  if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    assert sum(g["replicas"] for g in gpu_groups) == load_yaml(ScanConfig, REPO / args.config).actors


def test_the_review_app_serve_config_builds(monkeypatch):
    """The reviewer app's Serve config: valid for Serve, and its args build the app (settings file found)."""
    from ray.serve.schema import ServeDeploySchema

    from deployments.review_app import build_review_app

    schema = ServeDeploySchema.model_validate(yaml.safe_load(REVIEW_CONFIG.read_text()))
    [app] = schema.applications
    assert app.import_path == "deployments.review_app:build_review_app" and app.route_prefix == "/review"
    assert {d.name for d in app.deployments} == {"ReviewApp"}
    monkeypatch.setenv("TRIPWIRE_HOME", str(REPO))
    assert build_review_app(app.args) is not None


def test_the_compliance_cronjobs_run_commands_the_cli_accepts():
    """Each CronJob's command parses with the real ``tripwire`` parser (a renamed option fails here, not in
    the cluster at 3 a.m.)."""
    import shlex

    from entrypoints.cli import build_parser

    parser, _ = build_parser()
    docs = list(yaml.safe_load_all((REPO / "cluster/cronjob-compliance.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["CronJob"] * 3
    for doc in docs:
        [container] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        if args[0] == "/bin/sh":  # the shell line: the tripwire command after the date
            args = shlex.split(args[2].split("&&", 1)[1].replace("$day", "2026-11-30"))
        assert args[0] == "tripwire"
        parsed = parser.parse_args(args[1:])
        assert parsed.command in ("audit", "compliance") and parsed.store.startswith("postgresql://")
