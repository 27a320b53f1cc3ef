"""Routing end to end: a provider killed under load is invisible to clients (non-streamed calls
fail over to the other target).
"""

import threading
import time

import httpx

from conftest import KEY, UPSTREAM_KEY, Proc, free_port
from test_control_plane import Node, eventually, init


def test_killing_a_target_under_load_is_invisible_to_clients(tmp_path):
    """Two mock providers behind one model; one is killed mid-load: every call still succeeds."""
    mocks = []
    for name in ("a", "b"):
        port = free_port()
        p = Proc(["mock", "--listen", f"127.0.0.1:{port}", "--expect-key", UPSTREAM_KEY, "--latency-ms", "5"],
                 tmp_path / f"mock-{name}.log", f"http://127.0.0.1:{port}/health")
        p.addr = f"127.0.0.1:{port}"
        mocks.append(p)
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(
        f"""
keys: [{{ name: load, key: {KEY} }}]
providers:
  - {{ name: a, kind: openai, base_url: 'http://{mocks[0].addr}/v1', api_keys: [{UPSTREAM_KEY}] }}
  - {{ name: b, kind: openai, base_url: 'http://{mocks[1].addr}/v1', api_keys: [{UPSTREAM_KEY}] }}
models:
  - {{ name: ha, attempts: 3, retry_backoff: 10ms, targets: [{{ provider: a, model: gpt-4o-mini }}, {{ provider: b, model: gpt-4o-mini }}] }}
"""
    )
    port = free_port()
    gw = Proc(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"], tmp_path / "gw.log", f"http://127.0.0.1:{port}/health")
    statuses, durations, lock, stop = [], [], threading.Lock(), threading.Event()

    def worker():
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                r = c.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                           json={"model": "ha", "messages": [{"role": "user", "content": "hi"}]})
                took = time.monotonic() - t0
                with lock:
                    statuses.append((r.status_code, r.headers.get("x-gatehouse-provider")))
                    durations.append(took)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        mocks[0].proc.kill()  # SIGKILL: no goodbye
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
        assert gw.stop() == 0
        mocks[1].stop()
    failed = [s for s in statuses if s[0] != 200]
    assert failed == [], f"{len(failed)} of {len(statuses)} calls failed: {failed[:5]}"
    before_kill = sum(1 for s in statuses if s[1] == "a")
    assert before_kill > 0 and len(statuses) > 100, (before_kill, len(statuses))
    # A measurement, not an assertion: how long calls took while the target died.
    durations.sort()
    p99 = durations[int(len(durations) * 0.99)] * 1000
    print(f"killed a target under load: {len(statuses)} calls, 0 failed ({before_kill} served by it before); "
          f"latency p99 {p99:.1f} ms, max {durations[-1] * 1000:.1f} ms")


def test_a_websocket_passes_through_the_rest_gateway(tmp_path):
    """A real WebSocket client talks to a real WebSocket echo server through `/s/{service}`."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    upstream_port, ready, stop = free_port(), threading.Event(), threading.Event()

    def run_server():
        async def echo(ws):
            async for message in ws:
                await ws.send(f"echo: {message}")

        async def main():
            async with serve(echo, "127.0.0.1", upstream_port):
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    server = threading.Thread(target=run_server, daemon=True)
    server.start()
    assert ready.wait(10)
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(
        f"""
keys: [{{ name: ws, key: {KEY} }}]
services:
  - name: chat-live
    kind: rest
    state: published
    upstreams: [{{ url: 'http://127.0.0.1:{upstream_port}' }}]
    routes: [{{ path: /ws, rewrite: / }}]
"""
    )
    port = free_port()
    gw = Proc(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"], tmp_path / "gw.log", f"http://127.0.0.1:{port}/health")
    try:
        async def talk():
            async with connect(f"ws://127.0.0.1:{port}/s/chat-live/ws", additional_headers={"authorization": f"Bearer {KEY}"}) as ws:
                replies = []
                for text in ("hello", "über the gateway"):
                    await ws.send(text)
                    replies.append(await ws.recv())
                return replies

        assert asyncio.run(talk()) == ["echo: hello", "echo: über the gateway"]

        async def refused():
            try:
                async with connect(f"ws://127.0.0.1:{port}/s/chat-live/ws"):
                    return "connected"
            except Exception as e:  # noqa: BLE001 - the handshake must be refused
                return str(e)

        assert "401" in asyncio.run(refused())
    finally:
        stop.set()
        assert gw.stop() == 0


def test_a_grpc_unary_call_passes_through_the_rest_gateway(tmp_path):
    """grpcio as server and client: HTTP/2 in, HTTP/2 out, status and trailers intact."""
    from concurrent import futures

    import grpc

    def say(request, context):
        if request == b"fail":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
        context.set_trailing_metadata((("x-served-by", "echo"),))
        return b"echo: " + request

    upstream_port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}),))
    server.add_insecure_port(f"127.0.0.1:{upstream_port}")
    server.start()
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(
        f"""
keys: [{{ name: grpc, key: {KEY} }}]
services:
  - name: echo-grpc
    kind: rest
    state: published
    http2: true
    upstreams: [{{ url: 'http://127.0.0.1:{upstream_port}' }}]
    routes: [{{ path: /test.Echo, methods: [POST] }}]
"""
    )
    port = free_port()
    gw = Proc(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"], tmp_path / "gw.log", f"http://127.0.0.1:{port}/health")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            # gRPC clients call /package.Service/Method; through the gateway the path carries
            # the service's prefix.
            say_rpc = channel.unary_unary("/s/echo-grpc/test.Echo/Say")
            metadata = (("authorization", f"Bearer {KEY}"),)
            reply, call = say_rpc.with_call(b"hi", metadata=metadata, timeout=10)
            assert reply == b"echo: hi"
            assert ("x-served-by", "echo") in call.trailing_metadata()
            try:
                say_rpc(b"fail", metadata=metadata, timeout=10)
                raise AssertionError("the upstream's gRPC error must reach the client")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert e.details() == "asked to fail"
    finally:
        server.stop(0)
        assert gw.stop() == 0


def test_a_provider_key_the_provider_refuses_is_set_aside_and_shown(mock, tmp_path):
    """A pool of a bad key and a good one: every call succeeds (the refused call is resent with
    the good key), and the admin API and /metrics show the bad key as revoked."""
    from openai import OpenAI

    password = init(tmp_path / "data")
    node = Node(tmp_path, "node", "--data-dir", str(tmp_path / "data"))
    try:
        node.login("owner", password)
        node.api("POST", "/providers", {"name": "pool", "kind": "openai", "base_url": f"http://{mock}/v1",
                                        "api_keys": ["sk-this-key-was-revoked", UPSTREAM_KEY]}, 201)
        node.api("POST", "/models", {"name": "chat", "open": True,
                                     "targets": [{"provider": "pool", "model": "gpt-4o-mini"}]}, 201)
        eventually(lambda: any(t["provider"] == "pool" for t in node.api("GET", "/health", None, 200)["items"]), within=5)
        node.api("POST", "/tenants", {"name": "acme"}, 201)
        node.api("POST", "/tenants/acme/apps", {"name": "web"}, 201)
        tenant_key = node.api("POST", "/tenants/acme/apps/web/keys", {"name": "prod"}, 201)["key"]
        client = OpenAI(base_url=f"{node.url}/v1", api_key=tenant_key, max_retries=0, timeout=20)
        for _ in range(4):
            eventually(lambda: client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]).choices, within=5)
        target = next(t for t in node.api("GET", "/health", None, 200)["items"] if t["provider"] == "pool")
        states = {k["key"]: k["state"] for k in target["keys"]}
        assert states == {"…oked": "revoked", "…-key": "active"}, states
        metrics = httpx.get(node.admin.rsplit("/admin/v1", 1)[0] + "/metrics").text
        assert 'gatehouse_provider_keys{provider="pool",state="revoked"} 1' in metrics
    finally:
        node.stop()
