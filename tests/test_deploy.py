"""The systemd unit in deploy/: systemd itself accepts it, and the commands it runs are the real ones."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "pipewatch-agent.service"
INSTALLED = "/opt/pipewatch"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_accepts_the_unit(tmp_path):
    # The unit names the install location; verify a copy that points at this checkout's virtualenv instead.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(ROOT)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


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
    for command in ("check-config", "agent"):  # with the config named as the unit names it
        result = subprocess.run([sys.executable, "-m", "pipewatch.cli", command], capture_output=True, text=True,
                                timeout=60, cwd=ROOT, env={**os.environ, "PIPEWATCH_CONFIG": str(config)})
        assert result.returncode == 2, (command, result.stderr)
        assert "pipelines[0].kafka.bootstrap_servers" in result.stderr
