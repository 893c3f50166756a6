"""The tests' Kafka-protocol broker: the embedded tansu that `logdistill demo` uses too.

    broker = TansuBroker().start()     # free port on 127.0.0.1, returns once Kafka clients can talk to it
    broker.bootstrap                   # "127.0.0.1:PORT"
    broker.restart()                   # same port; memory:// storage means topics and offsets are gone
    broker.stop()
    proxy = TansuProxy(broker.bootstrap).start()   # clients use proxy.bootstrap; proxy.stop(): an outage

The broker lives in service/embedded_broker.py; this module keeps the tests' import path.
"""

import socket
import subprocess
import time

from service.embedded_broker import (BINARY_ENV, SESSION_TIMEOUT_MS, BrokerError, TansuBroker,  # noqa: F401
                                     free_port, tansu_binary)


class TansuProxy:
    """tansu's own Kafka proxy in front of a broker: stopping it is a broker outage that keeps the data.

    A memory:// broker that is really restarted comes back empty, so "0 loss across an outage" cannot
    be checked against it. Behind this proxy the clients see the same thing as a broker going away
    (connections refused, metadata and coordinator lost) while the log and the committed offsets
    survive, so every acknowledged input can be checked after the outage.

    The proxy advertises itself in the metadata it relays, so clients never learn the broker's own
    address and every connection goes through it.
    """

    def __init__(self, origin: str, port: int | None = None, host: str = "127.0.0.1"):
        self.origin, self.host = origin, host
        self.port = port or free_port(host)
        self.process = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "TansuProxy":
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [str(tansu_binary()), "proxy", "--listener-url", url, "--advertised-listener-url", url,
             "--origin-url", f"tcp://{self.origin}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"tansu proxy on {self.bootstrap} not listening after {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # abrupt, like a broker that crashes or a network that drops
            self.process.wait()
            self.process = None
