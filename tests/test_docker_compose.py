"""docker/: the compose stack and the backend image, checked without a Docker engine (none runs on these machines).

``docker compose config`` (or Debian's ``docker-compose`` v1 when the compose plugin is missing) parses, validates
and interpolates the files with the example env file; the tests then check the resolved model: services, health
checks, volumes, the PostgreSQL wiring, loopback-only publishing, secrets only in the environment, and the GPU
override. The Dockerfile is checked for sharing scripts/setup.sh's install steps and copying what they need.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from required import DOCKER_COMPOSE, skip_or_fail

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
ENV_EXAMPLE = DOCKER / ".env.example"


def compose_command() -> list[str]:
    """``docker compose`` when the plugin answers, else ``docker-compose``; skip when neither is installed (fail
    under ``HILDIF_REQUIRE_DOCKER_COMPOSE=1``)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    skip_or_fail("neither `docker compose` nor `docker-compose` is installed (Debian package docker-compose)",
                 DOCKER_COMPOSE)


def resolved(*files: str, env_file: Path = ENV_EXAMPLE) -> dict:
    cmd = compose_command()
    args = [*cmd, *sum((["-f", str(DOCKER / f)] for f in files), []), "--env-file", str(env_file), "config"]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"
    return yaml.safe_load(proc.stdout)


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def stack() -> dict:
    return resolved("compose.yaml")


def test_compose_defines_the_three_services_with_health_checks(stack):
    services = stack["services"]
    assert set(services) == {"postgres", "label-studio", "backend"}
    for name, svc in services.items():
        check = svc.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no health check"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["label-studio"]["healthcheck"]["test"])
    assert "127.0.0.1:9090/health" in " ".join(services["backend"]["healthcheck"]["test"])
    # start order follows health: postgres -> label-studio -> backend
    assert services["label-studio"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["backend"]["depends_on"] == {"label-studio": {"condition": "service_healthy"}}
    assert services["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"
    assert services["postgres"]["image"] == "postgres:15"


def test_label_studio_runs_on_the_postgres_service(stack):
    env = env_example()
    ls = stack["services"]["label-studio"]["environment"]
    pg = stack["services"]["postgres"]["environment"]
    assert ls["DJANGO_DB"] == "postgresql" and ls["POSTGRE_HOST"] == "postgres" and str(ls["POSTGRE_PORT"]) == "5432"
    assert (ls["POSTGRE_NAME"], ls["POSTGRE_USER"], ls["POSTGRE_PASSWORD"]) == (
        pg["POSTGRES_DB"], pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert pg["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert len(ls["LABEL_STUDIO_USER_TOKEN"]) <= 40  # Label Studio's limit for the admin token
    assert ls["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert ls["SENTRY_DSN"] == "" and ls["LABEL_STUDIO_LATEST_VERSION_CHECK"] == "false"


def test_volumes_keep_models_round_state_and_databases(stack):
    assert {"postgres-data", "label-studio-data", "hildif-runs", "hildif-models"} <= set(stack["volumes"])

    def targets(svc):
        out = {}
        for v in stack["services"][svc]["volumes"]:
            if isinstance(v, str):
                source, target, *mode = v.split(":")
                out[target] = (source, mode[0] if mode else "rw")
            else:
                out[v["target"]] = (v["source"], "ro" if v.get("read_only") else "rw")
        return out

    backend = targets("backend")
    assert backend["/runs"][0] == "hildif-runs" and backend["/runs/models"][0] == "hildif-models"
    assert backend["/data"][1] == "ro"
    assert targets("postgres")["/var/lib/postgresql/data"][0] == "postgres-data"
    assert targets("label-studio")["/label-studio/data"][0] == "label-studio-data"


def test_only_label_studio_is_published_and_on_loopback_only(stack):
    services = stack["services"]
    assert not services["postgres"].get("ports") and not services["backend"].get("ports")
    ports = services["label-studio"]["ports"]
    assert len(ports) == 1
    port = ports[0]
    host_ip = port.split(":")[0] if isinstance(port, str) else port.get("host_ip")
    assert host_ip == "127.0.0.1"


def test_secrets_come_from_the_environment_never_the_command_line(stack):
    env = env_example()
    secrets = {env[k] for k in ("POSTGRES_PASSWORD", "LABEL_STUDIO_ADMIN_PASSWORD", "LABEL_STUDIO_API_KEY",
                                "HILDIF_BACKEND_PASSWORD")}
    backend = stack["services"]["backend"]
    assert backend["environment"]["HILDIF_BACKEND_PASSWORD"] == env["HILDIF_BACKEND_PASSWORD"]
    assert backend["environment"]["LABEL_STUDIO_API_KEY"] == env["LABEL_STUDIO_API_KEY"]
    for name, svc in stack["services"].items():
        command = " ".join(svc.get("command") or []) + " " + " ".join(str(x) for x in svc.get("entrypoint") or [])
        assert not any(s in command for s in secrets), f"{name}: a secret is on the command line"
        assert not re.search(r"--(password|token|api[-_]key)", command), name
    # a missing secret is an error naming it, not a silently empty password
    broken = DOCKER.parent / "test-artifacts" / "compose-missing-secret.env"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text("\n".join(f"{k}={v}" for k, v in env.items() if k != "HILDIF_BACKEND_PASSWORD") + "\n")
    cmd = [*compose_command(), "-f", str(DOCKER / "compose.yaml"), "--env-file", str(broken), "config"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0 and "HILDIF_BACKEND_PASSWORD" in proc.stderr


def test_backend_builds_cpu_by_default_and_cuda_with_the_gpu_override(stack):
    build = stack["services"]["backend"]["build"]
    assert Path(build["context"]).resolve() == REPO and build["dockerfile"] == "docker/Dockerfile"
    assert build["args"]["BASE"] == "python:3.11-slim"
    assert build["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert "deploy" not in stack["services"]["backend"]

    gpu = resolved("compose.yaml", "compose.gpu.yaml")["services"]["backend"]
    assert gpu["build"]["args"]["BASE"].startswith("nvidia/cuda:") and gpu["build"]["args"]["TORCH_INDEX_URL"] == ""
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert int(devices[0]["count"]) == 1
    assert "model.device=cuda" in gpu["command"]
    assert gpu["healthcheck"]["test"] == stack["services"]["backend"]["healthcheck"]["test"]


def test_dockerfile_installs_with_the_setup_script_and_copies_what_it_needs():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M) and re.search(r"^FROM \$\{BASE\}$", text, re.M)
    runs = [r for r in re.findall(r"^RUN (.+?)(?<!\\)$", text, re.M | re.S)]
    setup_runs = [r for r in runs if "scripts/setup.sh" in r]
    assert len(setup_runs) == 1 and "SKIP_LABEL_STUDIO=1 SKIP_TEST_TOOLS=1 bash scripts/setup.sh" in setup_runs[0]
    # the only other pip install is the torch build choice, which setup.sh then keeps (it skips an importable torch)
    pip_installs = re.findall(r"pip\"? install[^;&\n]*", text)
    assert pip_installs and all("TORCH_SPEC" in p for p in pip_installs)
    assert 'import torch' in (REPO / "scripts" / "setup.sh").read_text()
    # everything the setup script's `pip install -e .[dev]` reads is in the build context
    copied = {src for line in re.findall(r"^COPY (.+)$", text, re.M) for src in line.split()[:-1]}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["readme"] in copied and "pyproject.toml" in copied
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied, pattern
    assert {"label_config", "scripts/setup.sh"} <= copied
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for path in copied:
        assert any(line.lstrip("!").startswith(path) for line in ignore if line.startswith("!")), path
    assert re.search(r"^USER hildif$", text, re.M)  # not root at run time
    assert "HEALTHCHECK" in text and "127.0.0.1:9090/health" in text


def test_multigpu_override_trains_on_every_gpu_under_torchrun():
    services = resolved("compose.yaml", "compose.gpu.yaml", "compose.multigpu.yaml")["services"]
    train = services["train"]
    assert train["profiles"] == ["train"]  # a one-off job: `up` leaves it alone
    assert train["command"][:4] == ["hildif", "train", "--nproc", "8"] and "model.device=cuda" in train["command"]
    devices = train["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["count"] == "all" and devices[0]["capabilities"] == ["gpu"]

    def targets(svc):  # compose v2 gives mappings, docker-compose v1 "source:target:mode" strings
        out = {}
        for v in services[svc]["volumes"]:
            if isinstance(v, str):
                source, target, *mode = v.split(":")
                out[target] = (source, mode[0] if mode else "rw")
            else:
                out[v["target"]] = (v["source"], "ro" if v.get("read_only") else "rw")
        return out

    volumes, backend = targets("train"), targets("backend")
    assert volumes["/runs"][0] == backend["/runs"][0] == "hildif-runs"  # the backend serves what it trains
    assert volumes["/runs/models"][0] == backend["/runs/models"][0] == "hildif-models"
    assert volumes["/data"] == backend["/data"] and volumes["/data"][1] == "ro"
