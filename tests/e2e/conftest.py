"""Fixtures that run the real `gatehouse` binary: a mock upstream and a gateway in front of it.

The binary is `target/debug/gatehouse` (built by ./scripts/test) or $GATEHOUSE_BIN. Every process
listens on a free loopback port and is stopped at the end of the session.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("GATEHOUSE_BIN", str(ROOT / "target" / "debug" / "gatehouse"))
KEY = "e2e-client-key-0123456789"
UPSTREAM_KEY = "e2e-upstream-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, log, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


class Proc:
    """A gatehouse process with its log file."""

    def __init__(self, args, log, health_url):
        self.log = log
        self.proc = subprocess.Popen([BIN, *args], stdout=log.open("w"), stderr=subprocess.STDOUT)
        wait_ready(health_url, self.proc, log)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def fault_provider(name, kind, mock, **headers):
    base = f"http://{mock}/v1beta" if kind == "gemini" else f"http://{mock}/v1"
    hdrs = ", ".join(f"x-mock-{k.replace('_', '-')}: '{v}'" for k, v in headers.items())
    return f"  - {{ name: {name}, kind: {kind}, base_url: '{base}', api_keys: [{UPSTREAM_KEY}], headers: {{ {hdrs} }} }}\n"


def gateway_config(mock, extra=""):
    return f"""
server:
  max_body: 1MiB
  drain_timeout: 10s
keys:
  - {{ name: e2e, key: {KEY} }}
providers:
  - {{ name: p-openai, kind: openai, base_url: 'http://{mock}/v1', api_keys: [{UPSTREAM_KEY}] }}
  - {{ name: p-anthropic, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [{UPSTREAM_KEY}] }}
  - {{ name: p-gemini, kind: gemini, base_url: 'http://{mock}/v1beta', api_keys: [{UPSTREAM_KEY}] }}
  - {{ name: dead, kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1' }}
  - {{ name: slow, kind: openai, base_url: 'http://{mock}/v1', api_keys: [{UPSTREAM_KEY}], headers: {{ x-mock-latency-ms: '5000' }}, timeouts: {{ first_byte: 300ms }} }}
{fault_provider("limited", "anthropic", mock, fault="429", retry_after="7")}\
{fault_provider("down", "gemini", mock, fault="503")}\
{fault_provider("broken", "openai", mock, fault="500")}\
{fault_provider("cut", "anthropic", mock, fault="drop")}\
{fault_provider("gcut", "gemini", mock, fault="drop")}\
{fault_provider("slowstream", "anthropic", mock, chunk_delay_ms="100")}\
{extra}\
models:
  - {{ name: gpt, targets: [{{ provider: p-openai, model: gpt-4o-mini }}] }}
  - {{ name: claude, targets: [{{ provider: p-anthropic, model: claude-sonnet-4-5 }}] }}
  - {{ name: gemini, targets: [{{ provider: p-gemini, model: gemini-2.5-flash }}] }}
  - {{ name: embed-openai, targets: [{{ provider: p-openai, model: text-embedding-3-small }}] }}
  - {{ name: embed-gemini, targets: [{{ provider: p-gemini, model: gemini-embedding-001 }}] }}
"""


@pytest.fixture(scope="session")
def mock(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    p = Proc(["mock", "--listen", f"127.0.0.1:{port}", "--expect-key", UPSTREAM_KEY], log, f"http://127.0.0.1:{port}/health")
    yield f"127.0.0.1:{port}"
    p.stop()


def start_gateway(mock, tmp, extra=""):
    cfg = tmp / "gatehouse.yaml"
    cfg.write_text(gateway_config(mock, extra))
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"], tmp / "gateway.log", f"http://127.0.0.1:{port}/health")
    proc.url = f"http://127.0.0.1:{port}"
    return proc


@pytest.fixture(scope="session")
def gateway(mock, tmp_path_factory):
    g = start_gateway(mock, tmp_path_factory.mktemp("gateway"))
    yield g
    assert g.stop() == 0, g.log.read_text()


@pytest.fixture
def client(gateway):
    from openai import OpenAI

    return OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def mock_stats(mock):
    with urllib.request.urlopen(f"http://{mock}/mock/stats") as r:
        return json.load(r)
