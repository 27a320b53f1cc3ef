//! A Redis for tests: `GATEHOUSE_TEST_REDIS_URL`, or else a throwaway `redis-server` on a free
//! port, started once per test process and stopped by a watchdog when the process ends. Each
//! caller gets its own database number, so tests do not share counters.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// A Redis URL with a database of its own (1..15, then reused).
pub fn redis_url() -> String {
    let base = server();
    let db = NEXT_DB.fetch_add(1, Ordering::Relaxed) % 15 + 1;
    format!("{}/{db}", base.trim_end_matches('/'))
}

fn server() -> String {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("GATEHOUSE_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => server_of(&u),
            _ => start(),
        })
        .clone()
}

/// `redis://host:port/3` → `redis://host:port/` (the database number is ours to choose).
fn server_of(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].find('/') {
        Some(j) => url[..start + j + 1].to_owned(),
        None => format!("{url}/"),
    }
}

fn fail(what: &str) -> ! {
    #[expect(clippy::panic, reason = "test set-up: a failure must stop the test")]
    {
        panic!("test Redis: {what}")
    }
}

#[expect(
    clippy::zombie_processes,
    reason = "the server lives as long as the test process; the watchdog stops it"
)]
fn start() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&e.to_string()));
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot start redis-server (install it, or set GATEHOUSE_TEST_REDIS_URL): {e}"
            ))
        });
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null",
        std::process::id(),
        child.id()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("redis://127.0.0.1:{port}/");
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    fail("redis-server did not start listening")
}
