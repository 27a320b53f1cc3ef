//! The Redis back end: exact across any number of nodes.
//!
//! Admission is one Lua script per call (Redis runs scripts atomically): it reads every counter,
//! checks every rule, and writes all of them only if all pass — the same arithmetic as the memory
//! back end (`gcra`), with times in microseconds. Rolling-window state expires once the window has
//! passed, calendar counters a day after their period, leases (a sorted set scored by expiry) when
//! they are released or time out.

use redis::aio::ConnectionManager;
use redis::Script;

use crate::limiter::{Arith, Resolved, Status, Verdict};
use crate::LimitError;

const ADMIT: &str = r#"
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local n = #KEYS
local out = {0, 0}
local new = {}
local refused = 0
local retry = 0
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local kind, limit, span, amt = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local remaining, reset = 0, 0
  if kind == 'g' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    local t = span / limit
    local base = math.max(tat, now)
    local nt = base + amt * t
    local ahead = nt - now
    if ahead <= span + 0.000001 then
      new[i] = nt
      remaining = math.floor((span - ahead + 0.000001) / t)
      reset = ahead
    else
      new[i] = tat
      remaining = math.floor((span - math.max(tat - now, 0) + 0.000001) / t)
      reset = math.max(base - now, 0)
      if refused == 0 then refused = i; retry = ahead - span end
    end
    if remaining > limit then remaining = limit end
    if remaining < 0 then remaining = 0 end
  elseif kind == 's' then
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    if span > 0 then reset = math.max(span - now, 0) end
    if used + amt <= limit then
      new[i] = used + amt
      remaining = limit - used - amt
    else
      new[i] = used
      remaining = math.max(limit - used, 0)
      if refused == 0 then
        refused = i
        if span > 0 then retry = span - now else retry = 9007199254740991 end
      end
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local held = redis.call('ZCARD', KEYS[i])
    if held + 1 <= limit then
      remaining = limit - held - 1
    else
      remaining = math.max(limit - held, 0)
      if refused == 0 then refused = i; retry = 1000000 end
    end
  end
  out[#out + 1] = remaining
  out[#out + 1] = math.floor(reset)
end
out[1] = refused
out[2] = math.floor(retry)
if refused > 0 then return out end
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local kind, span = ARGV[b + 1], tonumber(ARGV[b + 3])
  if kind == 'g' then
    redis.call('SET', KEYS[i], string.format('%.3f', new[i]), 'PX', math.ceil((new[i] - now) / 1000) + 1000)
  elseif kind == 's' then
    redis.call('SET', KEYS[i], string.format('%.0f', new[i]))
    if span > 0 then redis.call('PEXPIREAT', KEYS[i], math.ceil(span / 1000) + 86400000) end
  else
    redis.call('ZADD', KEYS[i], now + span, lease)
    redis.call('PEXPIRE', KEYS[i], math.ceil(span / 1000) + 1000)
  end
end
return out
"#;

const SETTLE: &str = r#"
local now = tonumber(ARGV[1])
local lease = ARGV[2]
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 4
  local kind, limit, span, delta = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if kind == 'g' and delta ~= 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    local t = span / limit
    local nt
    if delta < 0 then nt = math.max(tat + delta * t, now) else nt = math.max(tat, now) + delta * t end
    redis.call('SET', KEYS[i], string.format('%.3f', nt), 'PX', math.ceil((math.max(nt, now) - now) / 1000) + 1000)
  elseif kind == 's' and delta ~= 0 then
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    local v = math.max(used + delta, 0)
    local ttl = redis.call('PTTL', KEYS[i])
    redis.call('SET', KEYS[i], string.format('%.0f', v))
    if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
  elseif kind == 'c' then
    redis.call('ZREM', KEYS[i], lease)
  end
end
return 1
"#;

const PEEK: &str = r#"
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local kind = ARGV[1 + i]
  if kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    out[i] = tostring(redis.call('ZCARD', KEYS[i]))
  else
    out[i] = redis.call('GET', KEYS[i]) or '0'
  end
end
return out
"#;

#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    admit: Script,
    settle: Script,
    peek: Script,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis(…)")
    }
}

fn code(kind: Arith) -> &'static str {
    match kind {
        Arith::Gcra => "g",
        Arith::Sum => "s",
        Arith::Leases => "c",
    }
}

/// Counter keys live under one prefix.
fn key(k: &str) -> String {
    format!("gatehouse:limit:{k}")
}

impl Redis {
    pub async fn connect(url: &str) -> Result<Self, LimitError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            peek: Script::new(PEEK),
        })
    }

    pub async fn admit(
        &self,
        resolved: &[Resolved],
        lease: &str,
        now_us: i64,
    ) -> Result<Verdict, LimitError> {
        let mut inv = self.admit.prepare_invoke();
        inv.arg(now_us).arg(lease);
        for r in resolved {
            inv.key(key(&r.key))
                .arg(code(r.kind))
                .arg(r.limit.max(1))
                .arg(format!("{:.3}", r.span_us))
                .arg(r.amount);
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = inv.invoke_async(&mut conn).await?;
        if out.len() != 2 + 2 * resolved.len() {
            return Err(LimitError::Protocol(format!(
                "admit returned {} values",
                out.len()
            )));
        }
        let statuses: Vec<Status> = resolved
            .iter()
            .enumerate()
            .map(|(i, r)| Status {
                measure: r.measure,
                limit: r.limit,
                remaining: u64::try_from(out[2 + 2 * i]).unwrap_or(0),
                reset_us: out[3 + 2 * i],
            })
            .collect();
        Ok(match usize::try_from(out[0]).unwrap_or(0) {
            0 => Verdict::Admitted(statuses),
            i => Verdict::Refused {
                index: i - 1,
                retry_after_us: out[1],
                statuses,
            },
        })
    }

    pub async fn settle(
        &self,
        resolved: &[Resolved],
        deltas: &[i64],
        lease: &str,
        now_us: i64,
    ) -> Result<(), LimitError> {
        let mut inv = self.settle.prepare_invoke();
        inv.arg(now_us).arg(lease);
        for (r, d) in resolved.iter().zip(deltas) {
            inv.key(key(&r.key))
                .arg(code(r.kind))
                .arg(r.limit.max(1))
                .arg(format!("{:.3}", r.span_us))
                .arg(*d);
        }
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    pub async fn mark_once(&self, k: &str, ttl_us: i64) -> Result<bool, LimitError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key(&format!("mark:{k}")))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg((ttl_us / 1000).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    pub async fn peek(
        &self,
        resolved: &[Resolved],
        now_us: i64,
    ) -> Result<Vec<Status>, LimitError> {
        let mut inv = self.peek.prepare_invoke();
        inv.arg(now_us);
        for r in resolved {
            inv.key(key(&r.key)).arg(code(r.kind));
        }
        let mut conn = self.conn.clone();
        let out: Vec<String> = inv.invoke_async(&mut conn).await?;
        Ok(resolved
            .iter()
            .zip(out)
            .map(|(r, v)| {
                let state: f64 = v.parse().unwrap_or(0.0);
                crate::limiter::status(r, state, now_us as f64)
            })
            .collect())
    }
}
