//! Test databases: a fresh SQLite file or a fresh PostgreSQL database per test.
//!
//! PostgreSQL is the server named by `GATEHOUSE_TEST_POSTGRES_URL` when it is set; otherwise an
//! ephemeral cluster is created in a temporary directory (initdb + pg_ctl, run as the `postgres`
//! user when the tests run as root), once per test process, and a watchdog stops and removes it
//! when the process ends. Each test gets its own database on that server, so tests never share
//! state and a machine where PostgreSQL is installed but not running still runs the suite.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::Connection;

use crate::secrets::MasterKey;
use crate::Store;

/// A store on a new SQLite file in a new temporary directory (returned, to keep or inspect).
pub async fn sqlite() -> (Store, PathBuf) {
    let dir = temp_dir("sqlite");
    let url = format!("sqlite://{}", dir.join("gatehouse.db").display());
    let store = Store::open(&url, MasterKey::ephemeral().unwrap_or_else(|e| fail(&e)))
        .await
        .unwrap_or_else(|e| fail(&e));
    (store, dir)
}

/// A store on a new PostgreSQL database.
pub async fn postgres() -> Store {
    let url = postgres_database().await;
    Store::open(&url, MasterKey::ephemeral().unwrap_or_else(|e| fail(&e)))
        .await
        .unwrap_or_else(|e| fail(&e))
}

/// The URL of a new, empty database on the test server.
pub async fn postgres_database() -> String {
    let server = postgres_server();
    let name = format!("gh_test_{}", crate::ids::new_id("").to_lowercase());
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot connect to test PostgreSQL {server}: {e}")));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| fail(&e));
    let _ = conn.close().await;
    with_database(&server, &name)
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The URL (of its `postgres` database) of the server tests use.
pub fn postgres_server() -> String {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => start_ephemeral_cluster(),
        })
        .clone()
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    #[expect(clippy::panic, reason = "test set-up: a failure must stop the test")]
    {
        panic!("test store set-up failed: {e}")
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-{tag}-{}", crate::ids::new_id("")));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&e));
    dir
}

fn pg_bin(name: &str) -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versioned.sort();
    versioned.reverse();
    in_path
        .into_iter()
        .chain(versioned)
        .find(|p| p.is_file())
        .unwrap_or_else(|| fail(&format!("PostgreSQL's {name} not found: install postgresql or set GATEHOUSE_TEST_POSTGRES_URL")))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (PostgreSQL refuses root).
fn pg_command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn start_ephemeral_cluster() -> String {
    let root = is_root();
    let dir = temp_dir("pg");
    let data = dir.join("data");
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            fail(&"cannot hand the temporary cluster directory to the postgres user");
        }
    }
    let out = pg_command(&pg_bin("initdb"), root)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .unwrap_or_else(|e| fail(&e));
    if !out.status.success() {
        fail(&format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&e));
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
        dir.display()
    );
    let pg_ctl = pg_bin("pg_ctl");
    let out = pg_command(&pg_ctl, root)
        .arg("-D")
        .arg(&data)
        .args(["-o", &opts, "-l"])
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail(&e));
    if !out.status.success() {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        fail(&format!(
            "pg_ctl start failed: {}{log}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The watchdog outlives nothing: once this process is gone it stops the cluster and removes
    // its directory.
    let stop = if root {
        format!(
            "runuser -u postgres -- {} -D {} stop -m immediate",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "{} -D {} stop -m immediate",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}
