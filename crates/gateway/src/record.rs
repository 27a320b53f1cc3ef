//! The call log: one record per call, written off the request path, never lost.
//!
//! The request path hands a finished record to a bounded queue and never waits. A writer task
//! takes records in batches (up to 256, or what arrived within 200 ms) and writes each batch in
//! one transaction. When the queue is full, or the store fails, records go to an append-only
//! spill journal (one JSON record per line, each with a CRC-32 of its text), which is replayed in
//! order once the store answers again; replays cannot duplicate (records are keyed). On shutdown
//! the queue is drained into the store (or the journal) before the process exits.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_store::{CallRecord, Store};
use tokio::sync::mpsc;

const QUEUE: usize = 10_000;
const BATCH: usize = 256;

/// Counters of the pipeline (exported as metrics).
#[derive(Debug, Default)]
pub struct LogStats {
    pub written: AtomicU64,
    pub spilled: AtomicU64,
    pub replayed: AtomicU64,
    /// Records that could be neither queued, written nor spilled (must stay 0).
    pub dropped: AtomicU64,
}

/// The node's call log.
#[derive(Debug)]
pub struct CallLog {
    tx: Mutex<Option<mpsc::Sender<CallRecord>>>,
    spill: Arc<Spill>,
    pub stats: Arc<LogStats>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Spill {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Spill {
    fn append(&self, records: &[CallRecord], stats: &LogStats) {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                for r in records {
                    let json = serde_json::to_string(r).unwrap_or_default();
                    writeln!(f, "{:08x} {json}", crc32(json.as_bytes()))?;
                }
                f.sync_data()
            });
        match result {
            Ok(()) => {
                stats
                    .spilled
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                stats
                    .dropped
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, path = %self.path.display(), lost = records.len(), "cannot write the call log's spill journal");
            }
        }
    }

    /// Reads the journal's intact records (a torn last line is skipped and reported).
    fn read(&self) -> Vec<CallRecord> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let (sum, json) = line.split_once(' ')?;
                if u32::from_str_radix(sum, 16).ok()? != crc32(json.as_bytes()) {
                    tracing::warn!("a damaged line in the call log's spill journal was skipped");
                    return None;
                }
                serde_json::from_str(json).ok()
            })
            .collect()
    }

    fn clear(&self) {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = std::fs::remove_file(&self.path);
    }

    fn is_empty(&self) -> bool {
        std::fs::metadata(&self.path).map_or(true, |m| m.len() == 0)
    }
}

/// CRC-32 (IEEE), bitwise: the journal's few lines do not need a table.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl CallLog {
    /// Starts the writer; `spill` is the journal file (in the data dir).
    pub fn start(store: Store, spill: PathBuf) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spill = Arc::new(Spill {
            path: spill,
            lock: Mutex::new(()),
        });
        let stats = Arc::new(LogStats::default());
        let writer = tokio::spawn(write(store, rx, Arc::clone(&spill), Arc::clone(&stats)));
        Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            spill,
            stats,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Hands a record over; never waits.
    pub fn record(&self, r: CallRecord) {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let r = match tx {
            Some(tx) => match tx.try_send(r) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) => r,
            },
            None => r,
        };
        self.spill.append(std::slice::from_ref(&r), &self.stats);
    }

    /// Stops taking records and waits until every queued one is written (or spilled).
    pub async fn drain(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = writer {
            let _ = w.await;
        }
    }
}

async fn write(
    store: Store,
    mut rx: mpsc::Receiver<CallRecord>,
    spill: Arc<Spill>,
    stats: Arc<LogStats>,
) {
    let mut replay_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = replay_tick.tick() => {
                replay(&store, &spill, &stats).await;
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        flush(&store, &batch, &spill, &stats).await;
    }
    replay(&store, &spill, &stats).await;
}

async fn flush(store: &Store, batch: &[CallRecord], spill: &Spill, stats: &LogStats) {
    match store.insert_calls(batch).await {
        Ok(()) => {
            stats
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, records = batch.len(), "call log: the store failed; records go to the spill journal");
            spill.append(batch, stats);
        }
    }
}

async fn replay(store: &Store, spill: &Spill, stats: &LogStats) {
    if spill.is_empty() {
        return;
    }
    let records = spill.read();
    for chunk in records.chunks(BATCH) {
        if let Err(e) = store.insert_calls(chunk).await {
            tracing::debug!(error = %e, "call log: the store is still failing; keeping the journal");
            return;
        }
    }
    spill.clear();
    stats
        .replayed
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    tracing::info!(
        records = records.len(),
        "call log: spill journal replayed into the store"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}

/// A call's record as it is being filled in; sent when the call ends (for streams: when the
/// stream ends or the client leaves).
#[derive(Debug)]
pub struct Draft {
    pub rec: CallRecord,
    started: std::time::Instant,
    log: Arc<CallLog>,
    /// Input, output, cached-input prices (USD per 1M tokens) of the serving model.
    pub price: Option<(f64, f64, f64)>,
}

impl Draft {
    pub fn new(
        log: &Arc<CallLog>,
        request_id: &str,
        principal: &crate::access::Principal,
        surface: &str,
    ) -> Self {
        let (tenant_id, app_id) = match &principal.who {
            crate::access::Who::App { app_id, .. } => (
                principal.tenant_id.as_deref().map(str::to_owned),
                Some(app_id.to_string()),
            ),
            crate::access::Who::Operator => (None, None),
        };
        Self {
            rec: CallRecord {
                id: gatehouse_store::ids::new_id("cal_"),
                request_id: request_id.to_owned(),
                at: gatehouse_store::ids::now_ms(),
                tenant_id,
                app_id,
                key_id: principal.key_name.to_string(),
                surface: surface.to_owned(),
                service: None,
                model_asked: String::new(),
                model_served: None,
                provider: None,
                status: 0,
                error_code: None,
                attempts: Vec::new(),
                stream: false,
                duration_ms: 0,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                cost_nano: 0,
            },
            started: std::time::Instant::now(),
            log: Arc::clone(log),
            price: None,
        }
    }

    pub fn attempt(&mut self, provider: &str, model: &str, outcome: impl Into<String>) {
        self.rec.attempts.push(gatehouse_store::Attempt {
            provider: provider.to_owned(),
            model: model.to_owned(),
            outcome: outcome.into(),
        });
    }

    pub fn tokens(&mut self, t: crate::limits::Tokens) {
        self.rec.input_tokens = i64::try_from(t.input).unwrap_or(i64::MAX);
        self.rec.output_tokens = i64::try_from(t.output).unwrap_or(i64::MAX);
        self.rec.cached_tokens = i64::try_from(t.cached).unwrap_or(i64::MAX);
        if let Some((i, o, c)) = self.price {
            let cached = t.cached.min(t.input);
            let usd =
                ((t.input - cached) as f64 * i + cached as f64 * c + t.output as f64 * o) / 1e6;
            self.rec.cost_nano = (usd * 1e9).round() as i64;
        }
    }

    /// Sends the record with the call's status (and error code).
    pub fn finish(mut self, status: u16, error: Option<&str>) {
        self.rec.status = i64::from(status);
        self.rec.error_code = error.map(str::to_owned);
        self.rec.duration_ms =
            i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let log = Arc::clone(&self.log);
        log.record(self.rec);
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;

    fn rec(i: usize) -> CallRecord {
        CallRecord {
            id: gatehouse_store::ids::new_id("cal_"),
            request_id: format!("req-{i}"),
            at: gatehouse_store::ids::now_ms(),
            tenant_id: None,
            app_id: None,
            key_id: "k".into(),
            surface: "chat".into(),
            service: None,
            model_asked: "m".into(),
            model_served: Some("m".into()),
            provider: Some("p".into()),
            status: 200,
            error_code: None,
            attempts: vec![],
            stream: false,
            duration_ms: 1,
            input_tokens: 1,
            output_tokens: 2,
            cached_tokens: 0,
            cost_nano: 3,
        }
    }

    /// The store is down: records go to the journal; a node that starts on the same journal
    /// with a working store replays them, once.
    #[tokio::test]
    async fn records_survive_a_failing_store_through_the_journal() {
        let (store, dir) = gatehouse_store::testing::sqlite().await;
        let url = format!("sqlite://{}", dir.join("gatehouse.db").display());
        let journal = dir.join("call-log.spill");
        store.close().await;
        let down = CallLog::start(store, journal.clone());
        for i in 0..5 {
            down.record(rec(i));
        }
        down.drain().await;
        assert_eq!(down.stats.spilled.load(Ordering::Relaxed), 5);
        assert_eq!(down.stats.dropped.load(Ordering::Relaxed), 0);
        assert!(journal.metadata().unwrap().len() > 0);

        let key = gatehouse_store::secrets::MasterKey::ephemeral().unwrap();
        let up = Store::open(&url, key).await.unwrap();
        let log = CallLog::start(up.clone(), journal.clone());
        log.drain().await;
        let page = up
            .list_calls(&gatehouse_store::CallFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 5);
        assert!(!journal.exists(), "the journal is emptied once replayed");
        let _ = std::fs::remove_dir_all(dir);
    }
}
