"""Pre-flight checks on their own (the command lines that reach them are in test_bad_input):
a cluster address answers within a bounded time whatever listens there, optional packages are
named with what to install, folder probes leave nothing behind."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from hiddenlab.config import ConfigError
from hiddenlab.study import preflight


@pytest.fixture
def silent_server():
    """HOST:PORT of a server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield "127.0.0.1:%d" % server.getsockname()[1]
    stop.set()
    t.join()
    for c in accepted:
        c.close()
    server.close()


def test_nothing_listening_is_refused_at_once():
    t0 = time.time()
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        preflight.check_address("127.0.0.1:1", timeout=2)
    assert time.time() - t0 < 2


def test_a_server_that_is_not_ray_is_refused_within_the_timeout(silent_server):
    import ray._raylet  # noqa: F401  (imported before the clock starts: seconds on a busy CPU)

    t0 = time.time()
    with pytest.raises(ConfigError, match="not a Ray cluster's head") as e:
        preflight.check_address(silent_server, timeout=2)
    assert e.value.field == "address"
    assert time.time() - t0 < 2 + 1 + 2   # the timeout, the thread's grace, slack


def test_ray_client_is_refused_without_its_extra_or_a_grpc_server(silent_server):
    with pytest.raises(ConfigError, match="address") as e:
        preflight.check_address("ray://" + silent_server, timeout=1)
    assert "ray[client]" in str(e.value) or "no gRPC server" in str(e.value)


def test_local_needs_no_address_check():
    preflight.check_address(None)
    preflight.check_address("local")


def test_require_names_the_package_and_what_to_install():
    preflight.require("json", "reading JSON")   # present: nothing happens
    with pytest.raises(ConfigError) as e:
        preflight.require("hiddenlab_no_such_package", "--search nosuch",
                          install="hiddenlab[nosuch]", field="search")
    assert e.value.field == "search"
    assert "--search nosuch needs the optional package hiddenlab_no_such_package" in str(e.value)
    assert "pip install 'hiddenlab[nosuch]'" in str(e.value)
    with pytest.raises(ConfigError, match="not installed"):
        preflight.require("hiddenlab_no_such_package.sub", "a sub-module")


def test_writable_probes_leave_nothing(tmp_path):
    (tmp_path / "a-file").write_text("x")
    assert preflight.check_writable(tmp_path / "new" / "deeper", "out") == \
        tmp_path / "new" / "deeper"
    preflight.check_writable(tmp_path, "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        preflight.check_writable(tmp_path / "a-file", "out")
    with pytest.raises(ConfigError, match="cannot be created: .*a-file is a file"):
        preflight.check_writable(tmp_path / "a-file" / "sub", "out")
    with pytest.raises(ConfigError, match="cannot write in /proc"):
        preflight.check_writable("/proc/hiddenlab-probe", "storage")
