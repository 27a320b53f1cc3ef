"""The control plane end to end: `gatehouse init`, the admin API, subscriptions that need
approval, keys, live reload under load, and two nodes sharing one PostgreSQL.

Every test runs the real binary against a store of its own, with the official OpenAI SDK as the
client of the gateway and plain HTTP for the admin API.
"""

import os
import re
import subprocess
import threading
import time
import uuid

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import BIN, UPSTREAM_KEY, Proc, free_port, ROOT

RELOAD_WITHIN = 1.0  # seconds: the bound for an admin change to reach the data plane


def init(data_dir, *extra):
    out = subprocess.run([BIN, "init", "--data-dir", str(data_dir), *extra], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return re.search(r"password:\s+(\S+)", out.stdout).group(1)


class Node:
    """A `gatehouse serve` on a store, with an admin session."""

    def __init__(self, tmp, name, *store_args):
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}/admin/v1"
        self.proc = Proc(
            ["serve", *store_args, "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}"],
            tmp / f"{name}.log",
            f"{self.url}/health",
        )
        self.cookie = None

    def login(self, username, password):
        r = httpx.post(f"{self.admin}/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        set_cookie = r.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "Secure" in set_cookie
        self.cookie = set_cookie.split(";")[0]

    def api(self, method, path, body=None, expect=None):
        r = httpx.request(method, f"{self.admin}{path}", json=body, headers={"cookie": self.cookie})
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def client(self, key):
        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=20)

    def stop(self):
        assert self.proc.stop() == 0, self.proc.log.read_text()


def chat(client, model="chat"):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def eventually(check, within=RELOAD_WITHIN):
    """Polls `check` until it returns truthy; returns the seconds it took, or fails after `within`."""
    start = time.monotonic()
    while True:
        last = check()
        if last:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            pytest.fail(f"not true within {within}s: {last!r}")
        time.sleep(0.01)


def setup_catalog(node, mock, requires_approval=True):
    node.api("POST", "/tenants", {"name": "acme"}, 201)
    node.api("POST", "/providers", {"name": "mock", "kind": "openai", "base_url": f"http://{mock}/v1", "api_keys": [UPSTREAM_KEY]}, 201)
    node.api("POST", "/models", {"name": "chat", "targets": [{"provider": "mock", "model": "gpt-4o-mini"}]}, 201)
    node.api(
        "POST",
        "/services",
        {"name": "chat-api", "models": ["chat"], "state": "published", "requires_approval": requires_approval, "description": "Chat models"},
        201,
    )
    node.api("POST", "/tenants/acme/apps", {"name": "web"}, 201)
    return node.api("POST", "/tenants/acme/apps/web/keys", {"name": "prod"}, 201)


@pytest.fixture
def node(mock, tmp_path):
    password = init(tmp_path / "data")
    n = Node(tmp_path, "node", "--data-dir", str(tmp_path / "data"))
    n.login("owner", password)
    yield n
    n.stop()


def test_a_new_user_goes_from_init_to_an_approved_call(node, mock):
    """The README's walkthrough: init → log in → tenant, app, key → subscribe to a service that
    requires approval → 403 → approve → 200 → revoke the key → 401."""
    key = setup_catalog(node, mock)
    assert key["key"].startswith("gatehouse_")
    client = node.client(key["key"])

    with pytest.raises(openai.PermissionDeniedError) as e:
        chat(client)
    assert "chat-api" in str(e.value) and "no subscription" in str(e.value)

    sub = node.api("POST", "/tenants/acme/apps/web/subscriptions", {"service": "chat-api"}, 201)
    assert sub["state"] == "pending"

    def refused_as_pending():
        try:
            chat(client)
        except openai.PermissionDeniedError as err:
            return "pending" in str(err)
        return False

    eventually(refused_as_pending)
    done = node.api("POST", f"/subscriptions/{sub['id']}/approve", {"reason": "welcome"}, 200)
    assert done["state"] == "approved" and done["decided_by"] == "owner"

    def succeeds():
        try:
            return chat(client).choices[0].message.content
        except openai.PermissionDeniedError:
            return None

    eventually(succeeds)
    assert [m.id for m in client.models.list().data] == ["chat"], "a key sees what it may call"

    # Every call has a record: the refusals and the answered call, with its attempt, tokens and cost.
    def records():
        return node.api("GET", "/calls?tenant=acme", None, 200)["items"]

    eventually(lambda: any(r["status"] == 200 for r in records()), within=5)
    calls = records()
    ok = next(r for r in calls if r["status"] == 200)
    assert ok["model_asked"] == "chat" and ok["model_served"] == "gpt-4o-mini" and ok["provider"] == "mock"
    assert ok["attempts"] == [{"provider": "mock", "model": "gpt-4o-mini", "outcome": "ok"}]
    assert ok["input_tokens"] > 0 and ok["output_tokens"] > 0 and ok["cost_usd"] > 0
    assert ok["key_id"] == f"gatehouse_{key['id']}"
    assert any(r["status"] == 403 and r["error_code"] == "subscription_required" for r in calls)

    node.api("DELETE", f"/tenants/acme/apps/web/keys/{key['id']}", None, 200)

    def rejected():
        try:
            chat(client)
        except openai.AuthenticationError:
            return True
        return False

    eventually(rejected)
    audit = node.api("GET", "/audit?tenant=acme", None, 200)
    actions = [(a["action"], a["resource"]["kind"]) for a in audit["items"]]
    assert ("approve", "subscription") in actions and ("revoke", "api_key") in actions


def test_changes_reach_the_data_plane_under_load_with_no_failed_request(node, mock):
    key = setup_catalog(node, mock, requires_approval=False)
    node.api("POST", "/tenants/acme/apps/web/subscriptions", {"service": "chat-api"}, 201)
    client = node.client(key["key"])
    eventually(lambda: chat(client))

    errors, done, stop = [], [0], threading.Event()

    def load():
        c = node.client(key["key"])
        while not stop.is_set():
            try:
                chat(c)
                done[0] += 1
            except Exception as err:  # noqa: BLE001 - every failure counts
                errors.append(repr(err))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        # A new key works within a second.
        new = node.api("POST", "/tenants/acme/apps/web/keys", {"name": "second"}, 201)
        took_key = eventually(lambda: chat(node.client(new["key"])).choices)
        # A model change (new target weights, a second target) takes effect without a failed call.
        node.api("POST", "/providers", {"name": "mock2", "kind": "openai", "base_url": f"http://{mock}/v1", "api_keys": [UPSTREAM_KEY]}, 201)
        node.api(
            "PUT",
            "/models/chat",
            {"name": "chat", "targets": [{"provider": "mock", "model": "gpt-4o-mini", "weight": 1}, {"provider": "mock2", "model": "gpt-4o", "weight": 1000}]},
            200,
        )
        took_model = eventually(lambda: chat(client).model == "gpt-4o")
        # An approval opens a model behind a service that requires one.
        node.api("POST", "/models", {"name": "gold-chat", "targets": [{"provider": "mock", "model": "gpt-4o"}]}, 201)
        node.api("POST", "/services", {"name": "gold", "models": ["gold-chat"], "state": "published", "requires_approval": True}, 201)
        sub = node.api("POST", "/tenants/acme/apps/web/subscriptions", {"service": "gold"}, 201)
        node.api("POST", f"/subscriptions/{sub['id']}/approve", {}, 200)

        def gold():
            try:
                return chat(client, "gold-chat").choices
            except openai.PermissionDeniedError:
                return None

        took_sub = eventually(gold)
        # Rotating keeps the old key working during the overlap.
        node.api("POST", f"/tenants/acme/apps/web/keys/{key['id']}/rotate", {"overlap": "1h"}, 201)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [], errors[:5]
    assert done[0] > 20, "the load ran"
    print(
        f"reload under load: new key {took_key * 1000:.0f} ms, model change {took_model * 1000:.0f} ms, "
        f"approval {took_sub * 1000:.0f} ms; {done[0]} calls, 0 errors"
    )


def postgres_server():
    url = os.environ.get("GATEHOUSE_TEST_POSTGRES_URL")
    if url:
        return url
    out = subprocess.run([str(ROOT / "scripts" / "ephemeral-postgres"), str(os.getpid())], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip()
    os.environ["GATEHOUSE_TEST_POSTGRES_URL"] = url
    return url


def test_two_nodes_on_one_postgres_see_each_others_changes(mock, tmp_path):
    server = postgres_server()
    name = f"gh_e2e_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], check=True)
    db = server.rsplit("/", 1)[0] + "/" + name
    key_file = tmp_path / "master.key"
    out = subprocess.run([BIN, "init", "--store", db, "--master-key", str(key_file)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    password = re.search(r"password:\s+(\S+)", out.stdout).group(1)
    args = ["--store", db, "--master-key", str(key_file)]
    a, b = Node(tmp_path, "a", *args), Node(tmp_path, "b", *args)
    try:
        a.login("owner", password)
        b.login("owner", password)
        key = setup_catalog(a, mock, requires_approval=False)
        a.api("POST", "/tenants/acme/apps/web/subscriptions", {"service": "chat-api"}, 201)
        # Written through node A, served by node B.
        took = eventually(lambda: chat(b.client(key["key"])).choices)
        b.api("DELETE", f"/tenants/acme/apps/web/keys/{key['id']}", None, 200)

        def a_rejects():
            try:
                chat(a.client(key["key"]))
            except openai.AuthenticationError:
                return True
            return False

        took_back = eventually(a_rejects)
        print(f"cross-node reload: {took * 1000:.0f} ms (A→B), {took_back * 1000:.0f} ms (B→A)")
    finally:
        a.stop()
        b.stop()


def test_init_refuses_to_run_twice_and_serve_needs_init(tmp_path):
    init(tmp_path / "d")
    again = subprocess.run([BIN, "init", "--data-dir", str(tmp_path / "d")], capture_output=True, text=True)
    assert again.returncode != 0 and "already initialised" in again.stderr
    assert oct((tmp_path / "d" / "master.key").stat().st_mode & 0o777) == "0o600"
    fresh = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=30)
    assert fresh.returncode != 0 and "gatehouse init" in fresh.stderr


def test_apply_export_and_file_managed_resources(mock, tmp_path):
    password = init(tmp_path / "data")
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(
        f"""
server: {{ data_dir: "{tmp_path / 'data'}" }}
providers:
  - {{ name: filed, kind: openai, base_url: 'http://{mock}/v1', api_keys: [{UPSTREAM_KEY}] }}
models:
  - {{ name: filed-chat, open: true, targets: [{{ provider: filed, model: gpt-4o-mini }}] }}
"""
    )
    n = Node(tmp_path, "node", "--config", str(cfg))
    try:
        n.login("owner", password)
        r = httpx.put(f"{n.admin}/providers/filed", json={"name": "filed", "kind": "anthropic"}, headers={"cookie": n.cookie})
        assert r.status_code == 409 and r.json()["error"]["code"] == "file_managed"
        resources = tmp_path / "resources.yaml"
        resources.write_text("tenants: [{name: shop}]\napps: [{name: front, tenant: shop}]\n")
        dry = subprocess.run([BIN, "apply", "-f", str(resources), "--config", str(cfg), "--dry-run"], capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        assert "+ tenant shop" in dry.stdout and "dry run" in dry.stdout
        real = subprocess.run([BIN, "apply", "-f", str(resources), "--config", str(cfg)], capture_output=True, text=True)
        assert real.returncode == 0 and "2 change(s)" in real.stdout, real.stdout + real.stderr
        eventually(lambda: httpx.get(f"{n.admin}/tenants/shop", headers={"cookie": n.cookie}).status_code == 200, within=3)
        again = subprocess.run([BIN, "apply", "-f", str(resources), "--config", str(cfg)], capture_output=True, text=True)
        assert "0 change(s)" in again.stdout
        exported = subprocess.run([BIN, "export", "--config", str(cfg)], capture_output=True, text=True)
        assert exported.returncode == 0, exported.stderr
        assert "shop" in exported.stdout and UPSTREAM_KEY not in exported.stdout and "…" in exported.stdout
        touch = subprocess.run([BIN, "apply", "-f", "/dev/stdin", "--config", str(cfg)], input="providers: [{name: filed, kind: openai, api_keys: [x]}]\n", capture_output=True, text=True)
        assert touch.returncode != 0 and "managed by the config file" in touch.stderr
    finally:
        n.stop()


def test_rest_services_take_keys_subscriptions_and_leave_records(node, mock):
    node.api("POST", "/tenants", {"name": "acme"}, 201)
    node.api("POST", "/services", {"name": "status-api", "kind": "rest", "state": "published", "requires_approval": True,
                                   "upstreams": [{"url": f"http://{mock}"}], "routes": [{"path": "/health", "methods": ["GET"]}]}, 201)
    node.api("POST", "/tenants/acme/apps", {"name": "web"}, 201)
    key = node.api("POST", "/tenants/acme/apps/web/keys", {"name": "k"}, 201)["key"]
    url = f"{node.url}/s/status-api/health"
    headers = {"authorization": f"Bearer {key}"}
    assert httpx.get(url, headers=headers).status_code == 403
    sub = node.api("POST", "/tenants/acme/apps/web/subscriptions", {"service": "status-api"}, 201)
    node.api("POST", f"/subscriptions/{sub['id']}/approve", {}, 200)
    eventually(lambda: httpx.get(url, headers=headers).status_code == 200)

    def rest_record():
        items = node.api("GET", "/calls?tenant=acme", None, 200)["items"]
        return next((r for r in items if r["surface"] == "rest" and r["status"] == 200), None)

    eventually(rest_record, within=5)
    r = rest_record()
    assert r["service"] == "status-api" and r["model_asked"] == "GET /health"
    assert r["attempts"] == [{"provider": f"http://{mock}", "model": "/health", "outcome": "200"}]
