"""A local Flink standalone cluster for the demo and the tests, from the PyPI wheels.

`apache-flink` and `apache-flink-libraries` (installed with --no-deps: only the distribution's jars
and scripts are used) plus a Java 17 runtime. One jobmanager and one taskmanager run in the
foreground as child processes, each in its own process group, on free loopback ports, with a
config of their own in a work directory; they are stopped by their process group ids. Jobs are
the small Java programs in pipewatch/local/flink_job, compiled with the machine's javac on first use
and submitted through the REST API (a jar upload and a run).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from pipewatch.local.broker import free_port, port_open

FLINK_VERSION = "2.3.0"
_JOB_SOURCE = Path(__file__).resolve().parent / "flink_job" / "PipewatchJobs.java"


class FlinkUnavailable(RuntimeError):
    """Flink or Java is not installed here; the message says what to install."""


def flink_home() -> Path:
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise FlinkUnavailable(f"the apache-flink wheels are not installed: pip install --no-deps "
                               f"apache-flink=={FLINK_VERSION} apache-flink-libraries=={FLINK_VERSION}")
    home = Path(spec.submodule_search_locations[0])
    if not (home / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists():
        raise FlinkUnavailable(f"{home}/lib has no flink-dist jar: pip install --no-deps "
                               f"apache-flink-libraries=={FLINK_VERSION}")
    return home


def java_tools() -> tuple[str, str, str]:
    tools = tuple(shutil.which(name) for name in ("java", "javac", "jar"))
    if None in tools:
        raise FlinkUnavailable("Java 17 is not installed (java, javac and jar are needed): "
                               "apt-get install openjdk-17-jdk-headless")
    return tools  # type: ignore[return-value]


class LocalFlink:
    def __init__(self, workdir: Path, slots: int = 4) -> None:
        self.workdir = Path(workdir)
        self.slots = slots
        self.home = flink_home()
        self.java, self.javac, self.jar_tool = java_tools()
        self.rest_port, self.rpc_port = free_port(), free_port()
        self.conf_dir = self.workdir / "flink-conf"
        self.log_dir = self.workdir / "flink-log"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._jar_id: str | None = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self, timeout: float = 90.0) -> LocalFlink:
        """Start the jobmanager and the taskmanager; return once the taskmanager has registered."""
        self._write_config()
        env = {**os.environ, "FLINK_CONF_DIR": str(self.conf_dir), "FLINK_LOG_DIR": str(self.log_dir),
               "FLINK_HOME": str(self.home), "JAVA_HOME": str(Path(os.path.realpath(self.java)).parent.parent)}
        for role, script in (("jobmanager", "jobmanager.sh"), ("taskmanager", "taskmanager.sh")):
            if role in self._procs and self._procs[role].poll() is None:
                continue
            with open(self.log_dir / f"{role}.out", "ab") as out:
                self._procs[role] = subprocess.Popen(["bash", str(self.home / "bin" / script), "start-foreground"],
                                                     env=env, stdout=out, stderr=subprocess.STDOUT,
                                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            for role, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"Flink {role} exited with {proc.returncode}: "
                                       f"{(self.log_dir / f'{role}.out').read_text()[-2000:]}")
            if port_open(self.rest_port):
                try:
                    if httpx.get(f"{self.rest_url}/overview", timeout=2).json().get("taskmanagers", 0) >= 1:
                        return self
                except (httpx.HTTPError, ValueError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Flink did not come up within {timeout:g} s; logs in {self.log_dir}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop both processes (SIGTERM to their process groups, SIGKILL after 15 s)."""
        for proc in self._procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        self._jar_id = None  # uploaded jars live in the jobmanager's temporary directory

    def submit(self, kind: str) -> str:
        """Run one of the jobs of PipewatchJobs.java ("steady" or "failing"); returns its job id."""
        if self._jar_id is None:
            with open(self._build_jar(), "rb") as jar:
                answer = httpx.post(f"{self.rest_url}/jars/upload", files={"jarfile": ("pipewatch-jobs.jar", jar,
                                                                                         "application/x-java-archive")},
                                    timeout=60)
            answer.raise_for_status()
            self._jar_id = Path(answer.json()["filename"]).name
        answer = httpx.post(f"{self.rest_url}/jars/{self._jar_id}/run",
                            json={"entryClass": "PipewatchJobs", "programArgsList": [kind]}, timeout=60)
        answer.raise_for_status()
        return answer.json()["jobid"]

    def _build_jar(self) -> Path:
        """Compile the jobs once per source version (cached next to the work directory's parent)."""
        digest = hashlib.sha256(_JOB_SOURCE.read_bytes() + FLINK_VERSION.encode()).hexdigest()[:16]
        cache = Path(os.environ.get("PIPEWATCH_CACHE", Path.home() / ".cache" / "pipewatch"))
        jar = cache / f"pipewatch-jobs-{digest}.jar"
        if jar.exists():
            return jar
        build = self.workdir / "flink-job-build"
        classes = build / "classes"
        classes.mkdir(parents=True, exist_ok=True)
        subprocess.run([self.javac, "-nowarn", "-cp", f"{self.home / 'lib'}/*", "-d", str(classes), str(_JOB_SOURCE)],
                       check=True, capture_output=True, timeout=180)
        cache.mkdir(parents=True, exist_ok=True)
        partial = build / jar.name
        subprocess.run([self.jar_tool, "cf", str(partial), "-C", str(classes), "."], check=True, capture_output=True,
                       timeout=60)
        partial.replace(jar)
        return jar

    def _write_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        shipped = self.home / "conf"
        for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties",
                     "log4j-session.properties", "logback.xml", "logback-console.xml"):
            if (shipped / name).exists():
                shutil.copy(shipped / name, self.conf_dir / name)
        java_opts = yaml.safe_load((shipped / "config.yaml").read_text())["env"]["java"]["opts"]["all"]
        config = {
            # A JVM rethrowing the same exception often drops its message and stack trace (fast throw);
            # the failing test job's exceptions must keep theirs.
            "env": {"java": {"opts": {"all": java_opts, "taskmanager": "-XX:-OmitStackTraceInFastThrow"}}},
            "jobmanager": {"bind-host": "127.0.0.1", "rpc": {"address": "127.0.0.1", "port": self.rpc_port},
                           "memory": {"process": {"size": "1024m"}}, "execution": {"failover-strategy": "region"}},
            "taskmanager": {"bind-host": "127.0.0.1", "host": "127.0.0.1", "numberOfTaskSlots": self.slots,
                            "memory": {"process": {"size": "1536m"}}},
            "rest": {"address": "127.0.0.1", "bind-address": "127.0.0.1", "port": self.rest_port},
            "parallelism": {"default": 1},
            # Task metrics reach the REST API through the metric fetcher: every second instead of ten.
            "metrics": {"fetcher": {"update-interval": 1000}},
            "restart-strategy": {"type": "fixed-delay",
                                 "fixed-delay": {"attempts": 1_000_000, "delay": "2 s"}},
            # The steady job is backpressured on purpose: unaligned checkpoints still complete every few
            # seconds, and buffer debloating keeps the data in flight (and so the watermark lag) small.
            "execution": {"checkpointing": {"unaligned": {"enabled": True}}},
            "taskmanager.network.memory.buffer-debloat.enabled": True,
            "web": {"tmpdir": str(self.workdir / "flink-web")},
            "io": {"tmp": {"dirs": str(self.workdir / "flink-tmp")}},
        }
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        for name in ("masters", "workers"):
            (self.conf_dir / name).write_text("127.0.0.1\n")
