"""Limits and budgets end to end: three gateway nodes sharing one Redis stay within 1% of each
limit under concurrent load; the OpenAI SDK sees 429s with the standard headers; a stream the
client drops half-way is charged only what it streamed.
"""

import os
import subprocess
import threading
import time
import uuid

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import KEY, ROOT, UPSTREAM_KEY, Proc, free_port
from test_control_plane import Node, eventually, init

PRICE_IN, PRICE_OUT = 0.15, 0.6  # gpt-4o-mini, USD per million tokens (data/models/openai.yaml)


@pytest.fixture(scope="module")
def redis_url():
    url = os.environ.get("GATEHOUSE_TEST_REDIS_URL")
    if url:
        return url
    out = subprocess.run([str(ROOT / "scripts" / "ephemeral-redis"), str(os.getpid())], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def cluster_config(mock, redis, tag):
    return f"""
server: {{ redis: "{redis}" }}
keys: [{{ name: load, key: {KEY} }}]
providers:
  - {{ name: mock, kind: openai, base_url: 'http://{mock}/v1', api_keys: [{UPSTREAM_KEY}] }}
models:
  - {{ name: r, targets: [{{ provider: mock, model: gpt-4o-mini }}] }}
  - {{ name: t, targets: [{{ provider: mock, model: gpt-4o-mini }}] }}
  - {{ name: b, targets: [{{ provider: mock, model: gpt-4o-mini }}] }}
policies:
  - {{ name: req-{tag}, applies_to: {{ model: r }}, limits: [{{ requests: 300, per: 1h }}] }}
  - {{ name: tok-{tag}, applies_to: {{ model: t }}, limits: [{{ tokens: 3200, per: 1h, count: output }}] }}
  - {{ name: usd-{tag}, applies_to: {{ model: b }}, limits: [{{ spend_usd: 0.002, per: month }}] }}
"""


def hammer(urls, model, attempts, threads=12):
    """Sends `attempts` calls spread over the nodes from `threads` threads; returns the usages of
    the admitted ones and the statuses of all."""
    usages, statuses, lock = [], [], threading.Lock()
    counter = iter(range(attempts))

    def worker(i):
        with httpx.Client(timeout=30) as c:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                url = urls[n % len(urls)]
                r = c.post(
                    f"{url}/v1/chat/completions",
                    headers={"authorization": f"Bearer {KEY}"},
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16},
                )
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        usages.append(r.json()["usage"])

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return usages, statuses


def test_three_nodes_sharing_redis_stay_within_one_percent_of_each_limit(mock, redis_url, tmp_path):
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(cluster_config(mock, redis_url, uuid.uuid4().hex[:8]))
    nodes = []
    try:
        for i in range(3):
            port = free_port()
            p = Proc(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"], tmp_path / f"node{i}.log", f"http://127.0.0.1:{port}/health")
            p.url = f"http://127.0.0.1:{port}"
            nodes.append(p)
        urls = [n.url for n in nodes]

        usages, statuses = hammer(urls, "r", 600)
        assert set(statuses) <= {200, 429}, statuses
        admitted = len(usages)
        assert 297 <= admitted <= 303, f"requests: {admitted} admitted against a limit of 300"

        usages, statuses = hammer(urls, "t", 400)
        assert set(statuses) <= {200, 429}
        output = sum(u["completion_tokens"] for u in usages)
        assert 0.99 * 3200 <= output <= 3200, f"tokens: {output} charged against 3200"

        usages, statuses = hammer(urls, "b", 400)
        assert set(statuses) <= {200, 429}
        spent = sum(u["prompt_tokens"] * PRICE_IN + u["completion_tokens"] * PRICE_OUT for u in usages) / 1e6
        assert 0.99 * 0.002 <= spent <= 0.002 * 1.0001, f"budget: ${spent:.6f} spent of $0.002"
        print(f"3 nodes on one Redis: 300/{admitted} requests, {output}/3200 tokens, ${spent:.6f}/$0.002")
    finally:
        for n in nodes:
            assert n.stop() == 0, n.log.read_text()


def test_the_sdk_sees_429_with_headers_and_retry_after(mock, tmp_path):
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(
        f"""
keys: [{{ name: sdk, key: {KEY} }}]
providers:
  - {{ name: mock, kind: openai, base_url: 'http://{mock}/v1', api_keys: [{UPSTREAM_KEY}] }}
models:
  - {{ name: chat, targets: [{{ provider: mock, model: gpt-4o-mini }}] }}
policies:
  - {{ name: tiny, each: key, limits: [{{ requests: 1, per: 1h }}, {{ tokens: 10000, per: 1m }}] }}
"""
    )
    port = free_port()
    p = Proc(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"], tmp_path / "gw.log", f"http://127.0.0.1:{port}/health")
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
        with pytest.raises(openai.RateLimitError) as e:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "again"}])
        assert e.value.code == "rate_limit_exceeded"
        assert "policy `tiny` allows 1 requests per 1h for each key sdk" in e.value.message
        assert int(e.value.response.headers["retry-after"]) > 3000
    finally:
        assert p.stop() == 0


def test_a_dropped_stream_is_charged_only_what_it_streamed(mock, tmp_path):
    password = init(tmp_path / "data")
    node = Node(tmp_path, "node", "--data-dir", str(tmp_path / "data"))
    try:
        node.login("owner", password)
        node.api("POST", "/providers", {"name": "slow", "kind": "openai", "base_url": f"http://{mock}/v1", "api_keys": [UPSTREAM_KEY],
                                       "headers": {"x-mock-chunk-delay-ms": "50", "x-mock-tokens": "60"}}, 201)
        node.api("POST", "/models", {"name": "slow-chat", "open": True, "targets": [{"provider": "slow", "model": "gpt-4o-mini"}]}, 201)
        node.api("POST", "/policies", {"name": "meter", "applies_to": {"model": "slow-chat"},
                                      "limits": [{"tokens": 100000, "per": "1000h", "count": "output"}, {"concurrent": 5}]}, 201)
        node.api("POST", "/tenants", {"name": "acme"}, 201)
        node.api("POST", "/tenants/acme/apps", {"name": "web"}, 201)
        key = node.api("POST", "/tenants/acme/apps/web/keys", {"name": "k"}, 201)["key"]

        def usage():
            return {i["measure"]: i["used"] for i in node.api("GET", "/policies/meter/usage", None, 200)["items"]}

        eventually(lambda: usage() == {"tokens": 0, "concurrent": 0})
        seen = 0
        with httpx.stream("POST", f"{node.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": "slow-chat", "stream": True, "messages": [{"role": "user", "content": "tell me"}]}, timeout=30) as r:
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit-tokens"] == "100000"
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen += 1
                    if seen == 5:
                        assert usage()["concurrent"] == 1, "the stream holds a lease"
                        break
        # The gateway notices the client left, stops the stream and settles what it sent.
        eventually(lambda: usage()["concurrent"] == 0, within=5)
        used = usage()["tokens"]
        assert 0 < used < 60, f"charged {used} output tokens for a stream cut after {seen} events (the whole answer is 60, 1024 were reserved)"
        print(f"dropped stream: charged {used} of 60 output tokens (1024 reserved)")

        # Refusals and the limiter's health are metrics on the admin listener.
        node.api("POST", "/models", {"name": "tiny", "open": True, "targets": [{"provider": "slow", "model": "gpt-4o-mini"}]}, 201)
        node.api("POST", "/policies", {"name": "one", "applies_to": {"model": "tiny"}, "limits": [{"requests": 1, "per": "1h"}]}, 201)

        def second_is_refused():
            codes = [
                httpx.post(f"{node.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]}, timeout=30).status_code
                for _ in range(2)
            ]
            return 429 in codes

        eventually(second_is_refused, within=3)
        metrics = httpx.get(node.admin.replace("/admin/v1", "/metrics")).text
        assert 'gatehouse_limit_rejections_total{code="rate_limit_exceeded"}' in metrics, metrics
        assert "gatehouse_limiter_backend_failures_total 0" in metrics, metrics
        assert 'gatehouse_requests_total{surface="chat",model="gpt-4o-mini",provider="slow",status="200"}' in metrics, metrics
        assert "gatehouse_request_duration_seconds_bucket" in metrics
        assert "gatehouse_log_records_dropped_total 0" in metrics
    finally:
        node.stop()

