"""The binary as an operator runs it: graceful shutdown, `check`, and the demo."""

import json
import re
import signal
import subprocess
import threading
import time

import httpx

from conftest import BIN, KEY, free_port, start_gateway, wait_ready


def test_sigterm_lets_an_in_flight_stream_finish_then_exits_0(mock, tmp_path):
    gw = start_gateway(mock, tmp_path)
    body = {"model": "slowstream/claude-haiku-4-5", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    received = []

    def consume():
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {KEY}"}, timeout=20) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    received.append(line[6:])

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received, "the stream did not start"
    gw.proc.send_signal(signal.SIGTERM)
    # No new connections once draining has begun (polled: the signal takes a moment to land).
    refused = False
    deadline = time.monotonic() + 5
    while not refused and time.monotonic() < deadline:
        try:
            httpx.get(gw.url + "/health", timeout=1)
            time.sleep(0.02)
        except httpx.TransportError:
            refused = True
    t.join(timeout=10)
    assert gw.proc.wait(timeout=10) == 0, gw.log.read_text()
    assert refused, "the listener still accepted connections while draining"
    assert received[-1] == "[DONE]", received[-3:]
    assert len([r for r in received if r != "[DONE]"]) >= 17


def test_check_reports_every_problem_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
keys: [{ name: a, key: short }]
providers:
  - { name: p, kind: anthropic }
models:
  - name: m
    targets: [{ provider: opena1, model: x }]
""")
    r = subprocess.run([BIN, "check", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "keys[0].key: a client key must be at least 16 characters" in r.stderr
    assert "providers[0].api_keys: at least one API key is required" in r.stderr
    assert 'models[0].targets[0].provider: no provider named "opena1"' in r.stderr
    assert "3 problem(s) found" in r.stderr

    typo = tmp_path / "typo.yaml"
    typo.write_text("providers:\n  - { name: p, kind: openai, api_key: k, base_ulr: x }\n")
    r = subprocess.run([BIN, "check", "--config", str(typo)], capture_output=True, text=True)
    assert r.returncode == 1 and "providers[0]" in r.stderr and "unknown field `base_ulr`" in r.stderr

    env_missing = tmp_path / "env.yaml"
    env_missing.write_text("keys: [{ name: a, key: '${GATEHOUSE_TEST_UNSET_VAR}' }]\n")
    r = subprocess.run([BIN, "check", "--config", str(env_missing)], capture_output=True, text=True)
    assert r.returncode == 1 and "keys[0].key: environment variable GATEHOUSE_TEST_UNSET_VAR is not set" in r.stderr

    good = tmp_path / "good.yaml"
    good.write_text("keys: [{ name: a, key: '${MY_KEY}' }]\nproviders:\n  - { name: p, kind: openai, api_key: k }\n")
    r = subprocess.run([BIN, "check", "--config", str(good)], capture_output=True, text=True,
                       env={"MY_KEY": "a-long-enough-client-key"})
    assert r.returncode == 0, r.stderr
    assert "ok (1 providers, 0 models, 1 keys)" in r.stdout


def test_the_demo_needs_no_config_and_prints_its_key(tmp_path):
    port = free_port()
    log = tmp_path / "demo.log"
    proc = subprocess.Popen([BIN, "serve", "--demo", "--listen", f"127.0.0.1:{port}"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc, log)
        time.sleep(0.2)
        key = re.search(r"API key: (\S+)", log.read_text()).group(1)
        for model in ["demo/gpt", "demo/claude", "demo/gemini"]:
            r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_serve_without_config_says_what_to_do():
    r = subprocess.run([BIN, "serve"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "nothing to serve: pass --config FILE, --data-dir DIR (see `gatehouse init`), or --demo" in r.stderr
