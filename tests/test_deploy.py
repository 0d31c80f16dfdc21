"""The systemd units in deploy/: systemd itself accepts them, and the commands they run are the real ones."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "pipewatch-agent.service"
DASHBOARD_UNIT = ROOT / "deploy" / "systemd" / "pipewatch-dashboard@.service"
INSTALLED = "/opt/pipewatch"
HARDENING = ("User", "Group", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
             "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "RestrictAddressFamilies",
             "RestrictNamespaces", "LockPersonality", "MemoryMax", "KillSignal", "TimeoutStopSec", "Restart",
             "RestartSec", "RestartPreventExitStatus", "ExecStartPre", "WorkingDirectory", "Type")


def _unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("path, name", [(UNIT, UNIT.name), (DASHBOARD_UNIT, "pipewatch-dashboard@5006.service")])
def test_systemd_accepts_the_unit(tmp_path, path, name):
    # The unit names the install location; verify a copy that points at this checkout's virtualenv instead (the
    # dashboard's is a template: verified as the instance for port 5006).
    unit = tmp_path / name
    unit.write_text(path.read_text().replace(INSTALLED, str(ROOT)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_dashboard_unit_runs_the_dashboard_with_the_agents_hardening_and_limits():
    agent, dashboard = _unit()["Service"], _unit(DASHBOARD_UNIT)["Service"]
    assert {key: dashboard.get(key) for key in HARDENING} == {key: agent.get(key) for key in HARDENING}
    assert dashboard["ExecStart"] == (f"{INSTALLED}/.venv/bin/pipewatch dashboard --address 0.0.0.0 --port %i "
                                      "--allow-websocket-origin ${PIPEWATCH_ORIGIN} -- --use-xheaders")
    assert dashboard["EnvironmentFile"] == "-/etc/pipewatch/dashboard.env"
    assert "Environment=PIPEWATCH_CONFIG=/etc/pipewatch/pipewatch.yml\n" in DASHBOARD_UNIT.read_text()  # the agent's


def test_the_dashboard_command_the_unit_runs_parses(tmp_path):
    # Its options, as systemd passes them, up to the port check (the config is bad on purpose: exit 2 before exec).
    config = tmp_path / "pipewatch.yml"
    config.write_text("pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: []}\n")
    result = subprocess.run([sys.executable, "-m", "pipewatch.cli", "dashboard", "--address", "0.0.0.0", "--port",
                             "5006", "--allow-websocket-origin", "pipewatch.example.com", "--", "--use-xheaders"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "PIPEWATCH_CONFIG": str(config)})
    assert result.returncode == 2, result.stderr
    assert "pipelines[0].kafka.bootstrap_servers" in result.stderr


def test_the_unit_runs_the_agent_after_checking_its_config():
    service = _unit()["Service"]
    assert service["ExecStart"] == f"{INSTALLED}/.venv/bin/pipewatch agent"
    assert service["ExecStartPre"] == f"{INSTALLED}/.venv/bin/pipewatch check-config"
    assert service["KillSignal"] == "SIGTERM"
    assert service["Environment"] == "PIPEWATCH_CONFIG=/etc/pipewatch/pipewatch.yml"
    assert service["RestartPreventExitStatus"] == "2"


def test_a_bad_config_exits_with_the_status_the_unit_does_not_restart_on(tmp_path):
    config = tmp_path / "pipewatch.yml"
    config.write_text("pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: []}\n")
    for command in ("check-config", "agent", "dashboard"):  # with the config named as the unit names it
        result = subprocess.run([sys.executable, "-m", "pipewatch.cli", command], capture_output=True, text=True,
                                timeout=60, cwd=ROOT, env={**os.environ, "PIPEWATCH_CONFIG": str(config)})
        assert result.returncode == 2, (command, result.stderr)
        assert "pipelines[0].kafka.bootstrap_servers" in result.stderr
