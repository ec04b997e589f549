//! The same ledger in Redis, for comparison only: a hash per scope (the
//! studio's, the user's) holding window starts, used and reserved counts,
//! and a hash of holds per replica (so a dead replica's holds could be
//! swept). Each reserve and each settle is one Lua script, atomic in Redis,
//! one round trip. RESP is written by hand: a client crate for two commands
//! is not worth its weight.

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{Claim, RESERVED, USED, starts};

/// Rolls a scope's windows to ARGV starts, then (reserve) checks the five
/// limits of each scope and adds the hold, or (settle) swaps it for usage.
const COMMON: &str = r#"
local function roll(key, s)
  local w = redis.call('HMGET', key, 'ms', 'ds', 'mos')
  if tonumber(w[1] or 0) < s[1] then redis.call('HSET', key, 'ms', s[1], 'rpm', 0, 'tpm', 0) end
  if tonumber(w[2] or 0) < s[2] then redis.call('HSET', key, 'ds', s[2], 'tpd', 0, 'cpd', 0) end
  if tonumber(w[3] or 0) < s[3] then redis.call('HSET', key, 'mos', s[3], 'cpm', 0) end
end
local function num(v) return tonumber(v or 0) end
local s = {tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])}
local a = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
"#;

const RESERVE: &str = r#"
local function over(key, lim)
  local c = redis.call('HMGET', key, 'rpm', 'tpm', 'tpd', 'cpd', 'cpm', 'rr', 'rt', 'rc')
  local used = {num(c[1]) + num(c[6]) + a[1], num(c[2]) + num(c[7]) + a[2],
                num(c[3]) + num(c[7]) + a[2], num(c[4]) + num(c[8]) + a[3],
                num(c[5]) + num(c[8]) + a[3]}
  for k = 1, 5 do
    local l = tonumber(lim[k])
    if l and used[k] > l then return k - 1 end
  end
  return nil
end
roll(KEYS[1], s)
roll(KEYS[2], s)
local o = over(KEYS[1], {ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]})
if o then return 'studio:' .. o end
o = over(KEYS[2], {ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16]})
if o then return 'user:' .. o end
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], 'rr', a[1])
  redis.call('HINCRBY', KEYS[i], 'rt', a[2])
  redis.call('HINCRBY', KEYS[i], 'rc', a[3])
end
redis.call('HSET', KEYS[3], ARGV[17], a[1] .. ',' .. a[2] .. ',' .. a[3])
return nil
"#;

const SETTLE: &str = r#"
if redis.call('HDEL', KEYS[3], ARGV[10]) == 0 then return nil end
local u = {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
for i = 1, 2 do
  roll(KEYS[i], s)
  redis.call('HINCRBY', KEYS[i], 'rr', -a[1])
  redis.call('HINCRBY', KEYS[i], 'rt', -a[2])
  redis.call('HINCRBY', KEYS[i], 'rc', -a[3])
  redis.call('HINCRBY', KEYS[i], 'rpm', u[1])
  redis.call('HINCRBY', KEYS[i], 'tpm', u[2])
  redis.call('HINCRBY', KEYS[i], 'tpd', u[2])
  redis.call('HINCRBY', KEYS[i], 'cpd', u[3])
  redis.call('HINCRBY', KEYS[i], 'cpm', u[3])
end
return nil
"#;

struct Connection {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Connection {
    async fn open(address: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to Redis at {address}"))?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Connection {
            reader: BufReader::new(reader),
            writer,
        })
    }

    /// Sends one command; returns its reply as a bulk string (None: nil).
    async fn command(&mut self, parts: &[&str]) -> anyhow::Result<Option<String>> {
        let mut out = format!("*{}\r\n", parts.len());
        for part in parts {
            out.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        self.writer.write_all(out.as_bytes()).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'$') if line == "$-1" => Ok(None),
            Some(b'$') => {
                let mut body = String::new();
                self.reader.read_line(&mut body).await?;
                Ok(Some(body.trim_end().to_string()))
            }
            Some(b'+' | b':') => Ok(Some(line[1..].to_string())),
            _ => anyhow::bail!("Redis answered {line}"),
        }
    }
}

pub struct RedisLedger {
    connections: Mutex<Vec<Connection>>,
    reserve_sha: String,
    settle_sha: String,
}

impl RedisLedger {
    /// One connection per caller, and both scripts loaded.
    pub async fn connect(address: &str, callers: u64) -> anyhow::Result<RedisLedger> {
        let mut connections = Vec::new();
        for _ in 0..callers {
            connections.push(Connection::open(address).await?);
        }
        let first = &mut connections[0];
        let load = |script: &str| format!("{COMMON}{script}");
        let reserve_sha = first
            .command(&["SCRIPT", "LOAD", &load(RESERVE)])
            .await?
            .context("no sha")?;
        let settle_sha = first
            .command(&["SCRIPT", "LOAD", &load(SETTLE)])
            .await?
            .context("no sha")?;
        Ok(RedisLedger {
            connections: Mutex::new(connections),
            reserve_sha,
            settle_sha,
        })
    }

    pub async fn call(&self, claim: &Claim) -> anyhow::Result<()> {
        let mut connection = self
            .connections
            .lock()
            .await
            .pop()
            .context("no connection")?;
        let studio = format!("q:{}:", claim.studio);
        let user = format!("q:{}:{}", claim.studio, claim.user);
        let holds = "holds:bench-replica";
        let mut args: Vec<String> = starts(claim.now).iter().map(i64::to_string).collect();
        args.extend(RESERVED.iter().map(i64::to_string));
        let limits = ["", "", "1000000000000000", "", ""];
        let mut reserve = args.clone();
        reserve.extend(limits.iter().chain(&limits).map(|l| l.to_string()));
        reserve.push(claim.id.clone());
        let answer = evalsha(
            &mut connection,
            &self.reserve_sha,
            [&studio, &user, holds],
            &reserve,
        )
        .await?;
        anyhow::ensure!(answer.is_none(), "refused: {answer:?}");
        let mut settle = args;
        settle.extend(USED.iter().map(i64::to_string));
        settle.push(claim.id.clone());
        evalsha(
            &mut connection,
            &self.settle_sha,
            [&studio, &user, holds],
            &settle,
        )
        .await?;
        self.connections.lock().await.push(connection);
        Ok(())
    }
}

async fn evalsha(
    connection: &mut Connection,
    sha: &str,
    keys: [&str; 3],
    args: &[String],
) -> anyhow::Result<Option<String>> {
    let mut parts = vec!["EVALSHA", sha, "3"];
    parts.extend(keys);
    parts.extend(args.iter().map(String::as_str));
    connection.command(&parts).await
}
