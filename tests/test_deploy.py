"""deploy/ checked against the code it deploys: every command a container, pod or unit runs is a real
``hookline`` command (its options too), every probe and healthcheck path is a route the processes serve,
every HOOKLINE_* variable is a real setting (and the example values load), every metric, label and label
value in the Grafana dashboard's and the alert rules' PromQL exists (PromQL parsed, not grepped), and the
connection budget of the compose file follows the pool sizes of hookline.store.engine.

Nothing here needs Docker, Kubernetes or systemd. The last tests run the Dockerfile's and compose's
healthcheck commands against real ``hookline serve`` and ``hookline worker`` processes (SQLite).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import typer
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from hookline import metrics
from hookline.api import operations
from hookline.cli import app as cli_app
from hookline.config import ConfigError, Settings, load_settings
from hookline.sealing import generate_key
from hookline.store.engine import Store
from hookline.store.overview import Overview, TenantQueue

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
DASHBOARD = DEPLOY / "grafana" / "hookline-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE = DEPLOY / "prometheus" / "prometheus.yml"
DOC = ROOT / "docs" / "deployment.md"

SETTINGS_VARS = frozenset("HOOKLINE_" + name.upper() for name in Settings.model_fields)
# The client commands' variables (README, "Command line"): not server settings, but real.
CLIENT_VARS = frozenset(
    {"HOOKLINE_URL", "HOOKLINE_API_KEY", "HOOKLINE_PROFILE", "HOOKLINE_TENANT", "HOOKLINE_CONFIG"}
)
PROBES = {"/healthz", "/readyz"}


def is_real_variable(name: str) -> bool:
    """A setting of hookline's, or a standard variable its libraries read."""
    return name in SETTINGS_VARS or name == metrics.MULTIPROC_ENV or name.startswith("OTEL_")


def probe_routes() -> set[str]:
    """The paths the operator's router serves (on the API's port and on HOOKLINE_WORKER_PORT)."""
    router = operations.router(operations.Operations.__new__(operations.Operations))
    return {route.path for route in router.routes}


def check_command(argv: list[str]) -> None:
    """``argv`` runs a real hookline command with options it accepts (parsed by the CLI, not run)."""
    assert Path(argv[0]).name == "hookline", argv
    # typer's own click (typer._click), not the click package: tell a group by its subcommands
    command: Any = typer.main.get_command(cli_app)
    args = list(argv[1:])
    path = ["hookline"]
    while hasattr(command, "commands"):
        assert args, f"{argv}: names a command group, not a command"
        name = args.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"{argv}: 'hookline {name}' is not a command"
        command, path = sub, [*path, name]
    try:
        command.make_context(" ".join(path), args)  # parses the options, runs nothing
    except Exception as exc:  # typer's click: an unknown option, a bad value
        raise AssertionError(f"{argv}: {exc}") from None


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings hookline would load from exactly these variables (anything else unset), once the
    operator has replaced the secret key's placeholder, which hookline refuses
    (``test_the_secret_key_placeholder_is_refused``)."""
    if env.get("HOOKLINE_SECRET_KEY") == "change-me":
        env = {**env, "HOOKLINE_SECRET_KEY": generate_key()}
    for name in list(os.environ):
        if name.startswith("HOOKLINE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# --- the metrics that exist -------------------------------------------------------------------------


def metric_labels() -> dict[str, set[str]]:
    """Every series name a hookline process exports, with its label names: the metrics of
    hookline.metrics (counters with _total, histograms with _bucket/_count/_sum), the store's gauges
    (hookline.api.operations.gauges), and the default process/Python collectors."""
    names: dict[str, set[str]] = {}
    for value in [*vars(metrics).values(), metrics.worker_tick()]:
        if isinstance(value, MetricWrapperBase):
            name, kind = value._name, value._type  # prometheus_client keeps them on the wrapper
            labels = set(value._labelnames)
            if kind == "counter":
                names[f"{name}_total"] = labels
            elif kind == "histogram":
                names[f"{name}_bucket"] = labels | {"le"}
                names[f"{name}_count"] = names[f"{name}_sum"] = labels
            else:
                names[name] = labels
    now = datetime.now(UTC)
    overview = Overview(now, [TenantQueue("t1", 2, 1, now)], {"paused": 1}, {"open": 1}, 1)
    for family in operations.gauges(overview):
        names[family.name] = {label for sample in family.samples for label in sample.labels}
    for family in REGISTRY.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


METRICS = metric_labels()
# Label values that the code enumerates: a matcher on one of these must use a real value.
STATUS_CLASSES = {metrics.status_class(code, None) for code in range(100, 600)} | {
    metrics.status_class(None, failure) for failure in ("timeout", "blocked", "refused")
}
KNOWN_VALUES = {
    ("hookline_attempts_total", "status_class"): STATUS_CLASSES | {"not_sent"},
    ("hookline_deliveries_finished_total", "outcome"): {"succeeded", "failed"},
    ("hookline_endpoints", "state"): {*operations.BREAKER_STATES, "disabled"},
    ("hookline_deliveries_held", "reason"): set(operations.HELD_REASONS),
    ("hookline_db_pool_connections", "state"): {"in_use", "idle"},
}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def grafana_to_promql(expr: str) -> str:
    return re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)


def check_promql(expr: str) -> set[str]:
    """Parse ``expr``; every metric, matcher label and matcher value it names exists. Returns the
    metric names used."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError as exc:
        raise AssertionError(f"not PromQL ({exc}): {expr}") from None
    used: set[str] = set()
    grouping: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            assert name in METRICS or name == "up", f"no metric {name!r} (in {expr})"
            used.add(name)
            for matcher in node.matchers.matchers:
                known = METRICS.get(name, set()) | TARGET_LABELS
                assert matcher.name in known, f"{name} has no label {matcher.name!r} (in {expr})"
                values = KNOWN_VALUES.get((name, matcher.name))
                exact = (promql_parser.MatchOp.Equal, promql_parser.MatchOp.NotEqual)
                if values is not None and matcher.op in exact:
                    assert matcher.value in values, (
                        f"{name}{{{matcher.name}={matcher.value!r}}}: no such value"
                    )
                if values is not None and matcher.op not in exact:  # =~ and !~
                    assert any(re.fullmatch(matcher.value, v) for v in values), (
                        f"{matcher.value!r} matches nothing"
                    )
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)
        return True

    promql_parser.walk(tree, visit)
    available = set().union(*(METRICS.get(name, set()) for name in used)) | TARGET_LABELS
    assert grouping <= available, f"grouping by {grouping - available} that no metric has (in {expr})"
    return used


def test_the_command_check_can_fail() -> None:
    check_command(["/opt/hookline/bin/hookline", "api", "--workers", "2"])
    check_command(["hookline", "admin-key", "reset"])
    for argv in (["hookline", "wrker"], ["hookline", "api", "--threads", "2"], ["hookline", "admin-key"]):
        with pytest.raises(AssertionError):
            check_command(argv)


def test_the_promql_check_can_fail() -> None:
    check_promql('sum by (status_class) (rate(hookline_attempts_total{status_class="5xx"}[5m]))')
    bad = [
        "rate(hookline_attempts[5m])",  # a counter without _total
        'hookline_attempts_total{status="5xx"}',  # a label it does not have
        'hookline_attempts_total{status_class="500"}',  # a value it never takes
        'hookline_attempts_total{status_class!="200"}',  # nor here
        "max by (tenant) (hookline_attempts_total)",  # grouping by a label it does not have
        "hookline_queue_depth",  # a renamed metric
        "sum(rate(hookline_attempts_total[5m])",  # not PromQL
    ]
    for expr in bad:
        with pytest.raises(AssertionError):
            check_promql(expr)


# --- Grafana ----------------------------------------------------------------------------------------


def dashboard_panels() -> list[dict[str, Any]]:
    return [panel for panel in json.loads(DASHBOARD.read_text())["panels"] if panel["type"] != "row"]


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]


def test_dashboard_queries_name_real_metrics_and_cover_the_service() -> None:
    used: set[str] = set()
    for panel in dashboard_panels():
        for target in panel["targets"]:
            used |= check_promql(grafana_to_promql(target["expr"]))
    wanted = {
        "hookline_events_accepted_total",
        "hookline_deliveries_finished_total",
        "hookline_attempts_total",
        "hookline_attempt_duration_seconds_bucket",
        "hookline_delivery_latency_seconds_bucket",
        "hookline_queue_pending",
        "hookline_queue_due",
        "hookline_queue_oldest_due_age_seconds",
        "hookline_deliveries_held",
        "hookline_endpoints",
        "hookline_attempts_in_flight",
        "hookline_api_requests_total",
        "hookline_db_pool_connections",
        "hookline_worker_last_tick_timestamp_seconds",
    }
    assert wanted <= used, f"no panel shows {sorted(wanted - used)}"


STORE_GAUGES = {family.name for family in operations.gauges(Overview(datetime.now(UTC)))}


def sums_a_store_gauge(expr: str) -> bool:
    return any(
        re.search(rf"\bsum\b(\s*(by|without)\s*\([^)]*\))?\s*\(\s*{name}\b", expr) for name in STORE_GAUGES
    )


def test_store_gauges_are_never_summed_across_processes() -> None:
    """Every process reports the same store gauges: a sum() would count them once per target."""
    assert sums_a_store_gauge("sum by (tenant) (hookline_queue_pending)")
    assert not sums_a_store_gauge("topk(10, max by (tenant) (hookline_queue_pending))")
    exprs = [t["expr"] for p in dashboard_panels() for t in p["targets"]]
    exprs += [rule["expr"] for rule in alert_rules()]
    for expr in exprs:
        assert not sums_a_store_gauge(expr), expr


# --- Prometheus -------------------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_are_complete_and_name_real_metrics() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    used: dict[str, set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert rule["labels"]["severity"] in {"page", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        promql_parser.parse_duration(rule["for"])
        used[rule["alert"]] = check_promql(rule["expr"])
    covered = set().union(*used.values())
    for metric in (
        "hookline_queue_oldest_due_age_seconds",  # backlog
        "hookline_attempts_total",  # failure rate
        "hookline_breaker_transitions_total",  # breaker flapping
        "hookline_worker_last_tick_timestamp_seconds",  # worker not ticking
        "hookline_store_up",  # store down
        "hookline_api_requests_total",  # API 5xx
    ):
        assert metric in covered, f"no alert on {metric}"


def test_only_a_process_with_a_worker_exports_its_tick() -> None:
    """An API process has no hookline_worker_last_tick_timestamp_seconds at all (a 0 there would read as
    a loop stalled for 56 years); the first worker of a process makes it."""
    tick = "hookline_worker_last_tick_timestamp_seconds"
    script = (
        "from hookline import metrics; print(metrics.render().decode()); print('---'); "
        "metrics.worker_tick().set(1); print(metrics.render().decode())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, text=True).stdout
    api, worker = out.split("---")
    assert tick not in api and f"{tick} 1.0" in worker
    assert [rule for rule in alert_rules() if tick in rule["expr"]]


def test_scrape_config_sends_a_bearer_token_to_both_roles() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"hookline-api", "hookline-worker"}
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    ports = {"hookline-api": Settings().port, "hookline-worker": worker_port(compose["worker"])}
    for name, job in jobs.items():
        assert job["metrics_path"] == "/metrics" and "/metrics" in probe_routes()
        assert job["authorization"]["type"] == "Bearer"
        assert job["authorization"]["credentials_file"]
        assert all(sd["port"] == ports[name] for sd in job["dns_sd_configs"]), name
    # the rule on scrape failures names these jobs
    [target_down] = [r for r in alert_rules() if r["expr"].startswith("up{")]
    pattern = re.search(r'job=~"([^"]+)"', target_down["expr"])
    assert pattern is not None
    assert all(re.fullmatch(pattern.group(1), name) for name in jobs)


# --- Dockerfile -------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def docker_healthcheck() -> list[str]:
    [healthcheck] = [arg for op, arg in dockerfile_instructions() if op == "HEALTHCHECK"]
    return list(json.loads(healthcheck[healthcheck.index("CMD") + 3 :]))


def test_dockerfile_installs_hookline_alone_and_runs_it_unprivileged() -> None:
    instructions = dockerfile_instructions()
    ops = dict(instructions)  # the last of each
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", ops["FROM"])
    assert any(op == "RUN" and re.search(r"\bpip install \.(\s|$)", arg) for op, arg in instructions)
    assert "[" not in " ".join(arg for op, arg in instructions if op == "RUN" and "pip install" in arg)
    user = ops["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert str(ops["EXPOSE"]) == str(Settings().port)
    check_command(json.loads(ops["CMD"]))
    assert json.loads(ops["CMD"]) == ["hookline", "api"]
    for op, arg in instructions:
        if op == "ENV":
            for name in re.findall(r"\b([A-Z][A-Z0-9_]+)=", arg):
                assert is_real_variable(name) or not name.startswith("HOOKLINE_"), name
    healthcheck = " ".join(docker_healthcheck())
    paths = re.findall(r"http://127\.0\.0\.1:[^/]+(/\w+)", healthcheck)
    assert paths == ["/healthz"] and "/healthz" in probe_routes()
    assert "HOOKLINE_PORT" in healthcheck


def test_dockerignore_keeps_the_context_to_what_pip_install_reads() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    kept = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert kept == {"pyproject.toml", "README.md", "src"}
    copied = {
        part
        for op, arg in dockerfile_instructions()
        if op == "COPY"
        for part in arg.split()[:-1]
        if not part.startswith("--")
    }
    assert copied <= kept


# --- compose ----------------------------------------------------------------------------------------


def compose_services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def is_hookline(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("hookline") or "build" in service


def worker_port(service: dict[str, Any]) -> int:
    return int(service["environment"]["HOOKLINE_WORKER_PORT"])


def test_compose_runs_postgres_migrate_api_and_worker() -> None:
    services = compose_services()
    assert {"postgres", "migrate", "api", "worker"} <= set(services)
    for name in ("migrate", "api", "worker"):
        assert is_hookline(services[name])
        assert services[name]["command"] == ["hookline", name]
        check_command(services[name]["command"])
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["migrate"]["restart"] == "no"
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_compose_sets_only_real_settings_and_takes_secrets_from_the_environment() -> None:
    services = compose_services()
    for name, service in services.items():
        if not is_hookline(service):
            continue
        for variable, value in service["environment"].items():
            assert is_real_variable(variable), f"{name}: {variable}"
            if variable in {"HOOKLINE_ADMIN_KEY", "HOOKLINE_SECRET_KEY", "HOOKLINE_METRICS_TOKEN"}:
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{name}: {variable} must come from .env"
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE.parent / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    referenced = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert referenced == set(example), "the .env.example defines exactly what the compose file reads"
    assert all("change-me" in value for value in example.values())
    assert len(example["HOOKLINE_METRICS_TOKEN"]) >= 16
    assert "deploy/compose/.env" in (ROOT / ".gitignore").read_text().split()


def test_compose_healthchecks_probe_real_routes_on_the_right_ports() -> None:
    services = compose_services()
    worker = services["worker"]
    test = " ".join(worker["healthcheck"]["test"])
    assert re.findall(r"http://127\.0\.0\.1:[^/]+(/\w+)", test) == ["/healthz"]
    assert "HOOKLINE_WORKER_PORT" in test and worker_port(worker) > 0
    # the API keeps the image's HEALTHCHECK (HOOKLINE_PORT, which compose leaves at its default)
    assert "healthcheck" not in services["api"]
    assert "HOOKLINE_PORT" not in services["api"].get("environment", {})
    assert all(port.endswith(f":{Settings().port}") for port in services["api"]["ports"])


def pool_limit() -> int:
    """The most connections one process's pool opens (pool_size + max_overflow, hookline.store.engine)."""
    store = Store.from_url("postgresql://user:password@db.invalid/hookline")  # lazy: connects to nothing
    pool: Any = store.engine.pool
    return int(pool.size() + pool._max_overflow)


def test_compose_postgres_allows_every_connection_hookline_may_open() -> None:
    """docs/deployment.md's formula: 20 per process (+1 LISTEN per worker), migrate included, plus
    PostgreSQL's reserved superuser connections (3)."""
    assert pool_limit() == 20, "the pool changed: update docs/deployment.md's formula and this budget"
    services = compose_services()
    command = " ".join(services["postgres"]["command"])
    match = re.search(r"max_connections=(\d+)", command)
    assert match is not None
    needed = (
        pool_limit() * services["api"]["deploy"]["replicas"]
        + (pool_limit() + 1) * services["worker"]["deploy"]["replicas"]
        + pool_limit()  # migrate
        + 3
    )
    assert int(match.group(1)) >= needed
    assert f"= {needed - 3} connections" in COMPOSE.read_text()


# --- Kubernetes -------------------------------------------------------------------------------------


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_documents(path)]


def k8s(kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def k8s_env(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str] | None = None) -> Settings:
    env = {**k8s("ConfigMap", "hookline-config")["data"], **k8s("Secret", "hookline")["stringData"]}
    return settings_from({**env, **(extra or {})}, monkeypatch)


def test_every_manifest_is_a_kubernetes_object() -> None:
    objects = k8s_objects()
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Job", "Service", "Secret", "ConfigMap", "ServiceMonitor"} <= kinds
    for obj in objects:
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], obj
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "hookline"


def test_kubernetes_settings_are_real_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    for obj in k8s_objects():
        for variable in {**obj.get("data", {}), **obj.get("stringData", {})}:
            assert is_real_variable(variable), f"{obj['metadata']['name']}: {variable}"
        for container in pod_containers(obj):
            for item in container.get("env", []):
                assert is_real_variable(item["name"]), item["name"]
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                k8s(kind, ref["name"])  # exists
    settings = k8s_env(monkeypatch)
    assert settings.host == "0.0.0.0"  # probes come from the kubelet, not from inside the pod
    assert all("change-me" in v for v in k8s("Secret", "hookline")["stringData"].values())


def pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] not in {"Deployment", "Job"}:
        return []
    return list(obj["spec"]["template"]["spec"]["containers"])


def test_deployments_run_the_roles_with_probes_on_their_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = probe_routes()
    for name, role in (("hookline-api", "api"), ("hookline-worker", "worker")):
        deployment = k8s("Deployment", name)
        assert deployment["spec"]["replicas"] == 2
        [container] = pod_containers(deployment)
        check_command(container["command"])
        assert container["command"] == ["hookline", role]
        env = {item["name"]: item["value"] for item in container.get("env", [])}
        settings = k8s_env(monkeypatch, env)
        port = settings.port if role == "api" else settings.worker_port
        assert port is not None, f"{name}: the worker serves no probes without HOOKLINE_WORKER_PORT"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] in routes & PROBES
            assert ports.get(http["port"], http["port"]) == port, f"{name} {probe}: not on port {port}"
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        # graceful stop: longer than the drain (and the API's preStop pause)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > settings.drain_timeout
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        assert grace > settings.drain_timeout + (int(pre_stop[-1]) if pre_stop else 0)


def test_pods_run_unprivileged_as_the_image_user() -> None:
    uid = int(dict(dockerfile_instructions())["USER"].split(":")[0])
    for obj in k8s_objects():
        for container in pod_containers(obj):
            pod = obj["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == uid
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            # `hookline api --workers N` shares its metrics in a directory under /tmp
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, obj["metadata"]["name"]


def test_migrate_job_runs_hookline_migrate() -> None:
    job = k8s("Job", "hookline-migrate")
    [container] = pod_containers(job)
    assert container["command"] == ["hookline", "migrate"]
    check_command(container["command"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def selects(selector: dict[str, str], obj: dict[str, Any]) -> bool:
    labels = obj["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_pdbs_and_servicemonitor_point_at_real_pods_and_ports() -> None:
    deployments = [o for o in k8s_objects() if o["kind"] == "Deployment"]
    services = [o for o in k8s_objects() if o["kind"] == "Service"]
    for service in services:
        [target] = [d for d in deployments if selects(service["spec"]["selector"], d)]
        [container] = pod_containers(target)
        named = {p["name"] for p in container["ports"]}
        assert all(p["targetPort"] in named for p in service["spec"]["ports"]), service["metadata"]["name"]
    for pdb in (o for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"):
        assert [d for d in deployments if selects(pdb["spec"]["selector"]["matchLabels"], d)]
    monitor = k8s("ServiceMonitor", "hookline")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    monitored = [s for s in services if all(s["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
    assert {s["metadata"]["name"] for s in monitored} == {"hookline-api", "hookline-worker"}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics" and "/metrics" in probe_routes()
        assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in monitored)
        credentials = endpoint["authorization"]["credentials"]
        assert credentials["key"] in k8s("Secret", credentials["name"])["stringData"]
        assert credentials["key"] == "HOOKLINE_METRICS_TOKEN"


# --- systemd ----------------------------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((SYSTEMD / name).read_text())
    return parser


UNITS = ("hookline-migrate.service", "hookline-api.service", "hookline-worker@.service")


def env_file() -> dict[str, str]:
    lines = (SYSTEMD / "hookline.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_systemd_units_run_real_commands_hardened() -> None:
    drain = Settings().drain_timeout
    for name in UNITS:
        parsed = unit(name)
        assert {"Unit", "Service", "Install"} <= set(parsed.sections()), name
        service = parsed["Service"]
        argv = shlex.split(service["ExecStart"])
        check_command(argv)
        assert argv[1] == {"hookline-migrate.service": "migrate", "hookline-api.service": "api"}.get(
            name, "worker"
        )
        assert service["EnvironmentFile"] == "/etc/hookline/hookline.env"
        assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "root")
        for option, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
        }.items():
            assert service.get(option) == value, f"{name}: {option}"
        if name != "hookline-migrate.service":
            assert "hookline-migrate.service" in parsed["Unit"]["After"].split()
            assert "hookline-migrate.service" in parsed["Unit"]["Wants"].split()
            stop = float(service["TimeoutStopSec"].removesuffix("s"))
            assert stop > drain, f"{name}: SIGKILL before the drain ends"
    assert unit("hookline-migrate.service")["Service"]["Type"] == "oneshot"
    worker = unit("hookline-worker@.service")["Service"]
    assert worker["Environment"] == "HOOKLINE_WORKER_PORT=%i"  # the instance name is the port


def test_the_secret_key_placeholder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every example holds the placeholder, and an unchanged one stops the process at start, naming the
    variable: no deployment runs with a key copied from a public file."""
    compose_example = (COMPOSE.parent / ".env.example").read_text()
    assert "\nHOOKLINE_SECRET_KEY=change-me\n" in compose_example
    assert env_file()["HOOKLINE_SECRET_KEY"] == "change-me"
    assert k8s("Secret", "hookline")["stringData"]["HOOKLINE_SECRET_KEY"] == "change-me"
    monkeypatch.setenv("HOOKLINE_SECRET_KEY", "change-me")
    with pytest.raises(ConfigError, match=r"^HOOKLINE_SECRET_KEY: key 1 of 1 is not 32 bytes in base64url"):
        load_settings()


def test_systemd_env_example_is_real_settings_that_load(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_file()
    for variable in env:
        assert is_real_variable(variable), variable
    for name in UNITS:
        for assignment in unit(name)["Service"].get("Environment", "").split():
            assert is_real_variable(assignment.split("=", 1)[0]), assignment
    settings = settings_from({**env, "HOOKLINE_WORKER_PORT": "8101"}, monkeypatch)
    assert settings.effective_database_url.startswith("postgresql://")
    assert env["HOOKLINE_ADMIN_KEY"] == "change-me"


# --- documentation ----------------------------------------------------------------------------------


def test_every_hookline_variable_named_in_deploy_and_its_doc_is_real() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [DOC]
    for path in files:
        for name, star in set(re.findall(r"\b(HOOKLINE_[A-Z0-9_]+)(\*?)", path.read_text())):
            if star:  # HOOKLINE_BREAKER_*: a family of settings
                assert any(v.startswith(name) for v in SETTINGS_VARS), f"{path.relative_to(ROOT)}: {name}*"
            else:
                assert is_real_variable(name) or name in CLIENT_VARS, f"{path.relative_to(ROOT)}: {name}"


def test_deployment_doc_is_linked_and_names_the_files() -> None:
    assert "docs/deployment.md" in (ROOT / "README.md").read_text()
    doc = DOC.read_text()
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name != ".env.example"):
        relative = path.relative_to(ROOT)
        folders = [f"{parent}/" for parent in relative.parents if parent != Path("deploy") and parent.parts]
        assert str(relative) in doc or any(folder in doc for folder in folders), relative
    for command in re.findall(r"`hookline ([a-z-]+)", doc):
        group: Any = typer.main.get_command(cli_app)
        assert command in group.commands, command


# --- the healthchecks, run for real -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hookline(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hookline", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def healthcheck(argv: list[str], env: dict[str, str]) -> int:
    assert argv[0] == "python"
    return subprocess.run([sys.executable, *argv[1:]], env=env, timeout=20, check=False).returncode


def until_healthy(argv: list[str], env: dict[str, str], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while healthcheck(argv, env) != 0:
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
        assert time.monotonic() < deadline, "never healthy"
        time.sleep(0.3)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'hookline.db'}",
        HOOKLINE_ADMIN_KEY="change-me",
        HOOKLINE_LOG_LEVEL="warning",
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    yield env


def test_the_images_healthcheck_passes_on_a_running_api_and_fails_without_one(
    sqlite_env: dict[str, str],
) -> None:
    argv = docker_healthcheck()
    env = {**sqlite_env, "HOOKLINE_PORT": str(free_port())}
    assert healthcheck(argv, env) != 0  # nothing listens yet
    proc = hookline("serve", env=env)
    try:
        until_healthy(argv, env, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_compose_worker_healthcheck_passes_on_a_running_worker(sqlite_env: dict[str, str]) -> None:
    argv = compose_services()["worker"]["healthcheck"]["test"][1:]  # after "CMD"
    env = {**sqlite_env, "HOOKLINE_WORKER_PORT": str(free_port())}
    subprocess.run([sys.executable, "-m", "hookline", "migrate"], env=env, check=True, capture_output=True)
    proc = hookline("worker", env=env)
    try:
        until_healthy(argv, env, proc)
        # ready too: database reachable, schema current, worker loop turning
        until_healthy([*argv[:-1], argv[-1].replace("/healthz", "/readyz")], env, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
