//! Scenario 8: City on PostgreSQL. Fresh Cities (replicas) share one
//! database of a local PostgreSQL, durable usage on, otherwise configured
//! like scenario 5's durable City; the setup is made through the first and
//! awaited on the others; then Text at concurrency 64 as long as scenario 2,
//! the callers' connections split evenly over the replicas (client-side
//! balancing), while PostgreSQL's commits are counted.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::transport::Channel;

use crate::city::{self, Callers, Credential, TextCall};
use crate::launch::{self, Launcher, STOP_GRACE};
use crate::load::{self, Call};
use crate::scenarios::{DURABLE, Measured, Plan, measured};

pub const SQLITE: &str = "fresh City on SQLite, durable";
pub const ONE_REPLICA: &str = "1 replica on PostgreSQL, durable";
pub const TWO_REPLICAS: &str = "2 replicas on PostgreSQL, durable";

/// How long the other replicas may take to answer the setup's credentials
/// (caches follow writes over LISTEN/NOTIFY within about a second).
const SYNC_LIMIT: Duration = Duration::from_secs(10);
const SYNC_POLL: Duration = Duration::from_millis(50);
/// PostgreSQL's statistics lag: a busy backend reports its counts at most
/// once a second, an idle one within 10 s (PGSTAT_IDLE_INTERVAL). The
/// setup's connections go idle when it ends, so the load starts this long
/// after it: none of the setup's commits then land in the measured window.
/// The measured window itself is read after the warm-up and at its end, so
/// its up-to-a-second lag is the same at both ends.
const STATS_SETTLE: Duration = Duration::from_millis(10_500);

/// One row of scenario 8.
#[derive(Debug, Clone, Serialize)]
pub struct OnPostgres {
    pub replicas: usize,
    /// The studios and users of the setup, made through the first replica.
    pub setup_secs: f64,
    /// From the setup's end until every other replica answered its
    /// credentials (none with one replica).
    pub others_caught_up_secs: Option<f64>,
    #[serde(flatten)]
    pub measured: Measured,
    /// `sum(xact_commit)` of `pg_stat_database` after the measured load
    /// minus before it.
    pub commits: i64,
    pub commits_per_sec: f64,
}

impl OnPostgres {
    fn new(replicas: usize, measured: Measured, commits: i64) -> OnPostgres {
        let seconds = measured.summary.seconds;
        OnPostgres {
            replicas,
            setup_secs: 0.0,
            others_caught_up_secs: None,
            commits,
            commits_per_sec: if seconds > 0.0 {
                commits as f64 / seconds
            } else {
                0.0
            },
            measured,
        }
    }
}

/// Scenario 8's rows, and what they measure.
#[derive(Debug, Clone, Serialize)]
pub struct Replicas {
    pub one: Option<OnPostgres>,
    pub two: Option<OnPostgres>,
    pub note: String,
}

/// What scenario 8 measures, with the load's `connections`.
pub fn note(connections: usize) -> String {
    format!(
        "Same run, one after the other, each alone after scenario 5: the SQLite row is \
         scenario 5's fresh durable City; each PostgreSQL row starts fresh Cities (replicas) on a \
         fresh database of one local PostgreSQL on the same machine as City and the load (a \
         throwaway cluster of `scripts/pg-test-cluster`, with its settings: PostgreSQL's defaults \
         but `fsync = off` and `max_connections = 200`), durable usage on, the quota ledger in \
         PostgreSQL; the setup is made through the first replica and awaited on the other. Text \
         at concurrency 64 as long as scenario 2, the {connections} HTTP/2 connections split evenly \
         over the replicas (client-side balancing). PostgreSQL commits/s: `sum(xact_commit)` of \
         `pg_stat_database` after the load minus before, over its duration (every transaction of \
         every connection: usage batches, quota reserve and settle, heartbeats), read after the \
         warm-up and at the end; the load starts 10.5 s after the setup, as PostgreSQL reports an \
         idle connection's statistics up to 10 s late."
    )
}

impl Replicas {
    /// The section of the report; `sqlite` is scenario 5's durable City.
    pub fn markdown(&self, sqlite: Option<&Measured>, out: &mut String) {
        let not_measured = || vec!["not measured".to_string(); 5];
        let figures = |m: &Measured, commits: String| {
            let s = &m.summary;
            vec![
                format!("{:.0}", s.calls_per_sec),
                s.errors.to_string(),
                format!("{:.1}", s.p50_us),
                format!("{:.1}", s.p99_us),
                commits,
            ]
        };
        let on_postgres = |row: &Option<OnPostgres>| {
            row.as_ref().map_or_else(not_measured, |r| {
                figures(&r.measured, format!("{:.0}", r.commits_per_sec))
            })
        };
        let rows = [
            (
                SQLITE,
                sqlite.map_or_else(not_measured, |m| figures(m, "—".into())),
            ),
            (ONE_REPLICA, on_postgres(&self.one)),
            (TWO_REPLICAS, on_postgres(&self.two)),
        ]
        .into_iter()
        .map(|(target, cells)| std::iter::once(target.to_string()).chain(cells).collect())
        .collect();
        crate::table::section(
            out,
            "8. Several replicas on PostgreSQL (Text at concurrency 64, durable usage)",
            &[
                "target",
                "calls/s",
                "errors",
                "p50 µs",
                "p99 µs",
                "PostgreSQL commits/s",
            ],
            rows,
        );
        out.push_str(&self.note);
        out.push_str("\n\n");
    }
}

/// Scenario 8 with `replicas` fresh Cities on a fresh database of the
/// PostgreSQL server at `server_url`; they are stopped after.
pub async fn throughput(
    launcher: &Launcher,
    plan: &Plan,
    server_url: &str,
    replicas: usize,
    target: &str,
) -> anyhow::Result<OnPostgres> {
    let database = format!("bench_replicas_{replicas}");
    let url = create_database(server_url, &database).await?;
    let mut cities = Vec::new();
    let result = async {
        for replica in 1..=replicas {
            let name = format!("city-pg{replicas}-{replica}");
            let env = [("DOWNCITY_STORE__URL", url.as_str())];
            let city = launcher
                .start_named(&name, DURABLE, &env)
                .await
                .with_context(|| format!("{name} did not start"))?;
            cities.push(city);
        }
        let addrs: Vec<String> = cities.iter().map(|(_, addr)| addr.clone()).collect();
        measure(plan, server_url, &addrs, target).await
    }
    .await;
    for (city, _) in cities {
        city.stop(STOP_GRACE).await;
    }
    result
}

/// Populates through the first replica, waits until the others answer,
/// then runs the load over all of them and counts PostgreSQL's commits.
async fn measure(
    plan: &Plan,
    server_url: &str,
    addrs: &[String],
    target: &str,
) -> anyhow::Result<OnPostgres> {
    let per_replica = (plan.connections / addrs.len()).max(1);
    let mut by_replica = Vec::with_capacity(addrs.len());
    for addr in addrs {
        by_replica.push(city::connect(addr, per_replica).await?);
    }
    eprintln!(
        "setup ({target}): {} studios × {} users through replica 1",
        plan.studios, plan.users_per_studio
    );
    let started = Instant::now();
    let credentials = launch::populate(by_replica[0][0].clone(), plan).await?;
    let setup_secs = started.elapsed().as_secs_f64();
    for (index, channels) in by_replica.iter().enumerate().skip(1) {
        wait_until_known(&channels[0], &credentials)
            .await
            .with_context(|| format!("replica {}", index + 1))?;
    }
    let others_caught_up_secs =
        (addrs.len() > 1).then(|| started.elapsed().as_secs_f64() - setup_secs);
    let settled = Instant::now() + STATS_SETTLE;
    let mut stats = PgConnection::connect(server_url).await?;
    let call = TextCall(Callers::new(
        interleave(by_replica),
        credentials,
        downcity::server::MOCK_TEXT_MODEL,
    ));
    tokio::time::sleep_until(settled.into()).await;
    eprintln!(
        "scenario 8: {target}, concurrency {}",
        plan.throughput().concurrency
    );
    let load = plan.throughput();
    load::warm_up(load, call.clone()).await;
    let before = commits(&mut stats).await?;
    let summary = load::measure(load, call).await;
    let after = commits(&mut stats).await?;
    let row = OnPostgres {
        setup_secs,
        others_caught_up_secs,
        ..OnPostgres::new(addrs.len(), measured(target, summary), after - before)
    };
    eprintln!(
        "  PostgreSQL: {:.0} commits/s; setup {:.1} s, other replicas caught up in {}",
        row.commits_per_sec,
        setup_secs,
        others_caught_up_secs.map_or("–".into(), |s| format!("{s:.2} s"))
    );
    Ok(row)
}

/// Waits until the replica on `channel` answers Text for the first, a
/// middle and the last of `credentials` (the last made last).
async fn wait_until_known(channel: &Channel, credentials: &[Credential]) -> anyhow::Result<()> {
    let sample = [0, credentials.len() / 2, credentials.len() - 1].map(|i| credentials[i].clone());
    let call = TextCall(Callers::new(
        vec![channel.clone()],
        sample.to_vec(),
        downcity::server::MOCK_TEXT_MODEL,
    ));
    let started = Instant::now();
    let mut known = 0;
    while known < sample.len() {
        match call.call(0, known as u64).await {
            Ok(_) => known += 1,
            Err(error) if started.elapsed() >= SYNC_LIMIT => {
                anyhow::bail!(
                    "did not answer the setup's credentials within {SYNC_LIMIT:?}: {error}"
                )
            }
            Err(_) => tokio::time::sleep(SYNC_POLL).await,
        }
    }
    Ok(())
}

/// The server's commits so far, over every database.
async fn commits(connection: &mut PgConnection) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT sum(xact_commit)::BIGINT FROM pg_stat_database")
        .fetch_one(connection)
        .await
        .context("reading pg_stat_database")
}

/// Creates (anew) the database `name` on the server at `server_url`;
/// returns its URL.
async fn create_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut connection = PgConnection::connect(server_url)
        .await
        .context("connecting to PostgreSQL")?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut connection)
            .await
            .with_context(|| format!("creating the database {name}"))?;
    }
    connection.close().await?;
    with_database(server_url, name)
}

/// `url` (`postgres://user:password@host:port/database?options`) naming the
/// database `name` instead.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let authority_at = url
        .find("://")
        .context("the PostgreSQL URL has no scheme")?
        + 3;
    let rest = &url[authority_at..];
    let path_at = rest.find(['/', '?']).unwrap_or(rest.len());
    let options = rest[path_at..]
        .find('?')
        .map_or("", |at| &rest[path_at + at..]);
    Ok(format!(
        "{}{}/{name}{options}",
        &url[..authority_at],
        &rest[..path_at]
    ))
}

/// One list of the groups' items taken in turn (`a0 b0 a1 b1 …`), so that
/// callers spread over the list by index spread evenly over the groups.
fn interleave<T>(groups: Vec<Vec<T>>) -> Vec<T> {
    let mut iters: Vec<_> = groups.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        out.extend(iters.iter_mut().filter_map(Iterator::next));
        if out.len() == before {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Summary;

    #[test]
    fn names_another_database_keeping_the_rest() {
        let url = "postgres://downcity:secret@127.0.0.1:5432/postgres";
        assert_eq!(
            with_database(url, "bench").unwrap(),
            "postgres://downcity:secret@127.0.0.1:5432/bench"
        );
        assert_eq!(
            with_database("postgres://u@h:1/db?sslmode=disable", "b").unwrap(),
            "postgres://u@h:1/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "b").unwrap(),
            "postgres://u@h/b"
        );
        assert_eq!(
            with_database("postgres://u@h?x=1", "b").unwrap(),
            "postgres://u@h/b?x=1"
        );
        assert!(with_database("not a url", "b").is_err());
    }

    #[test]
    fn interleaves_groups_evenly() {
        assert_eq!(interleave(vec![vec![1, 3], vec![2, 4]]), [1, 2, 3, 4]);
        assert_eq!(interleave(vec![vec![1, 3, 4], vec![2]]), [1, 2, 3, 4]);
        assert_eq!(interleave(vec![vec![1, 2]]), [1, 2]);
        // Callers take channel `caller % len`: half of 64 go to each replica.
        let channels = interleave(vec![vec!['a'; 2], vec!['b'; 2]]);
        let to_a = (0..64)
            .filter(|c| channels[c % channels.len()] == 'a')
            .count();
        assert_eq!(to_a, 32);
    }

    fn measured(target: &str, seconds: f64) -> Measured {
        let summary = Summary {
            concurrency: 64,
            calls: 1000,
            errors: 0,
            seconds: 2.0,
            calls_per_sec: 500.0,
            p50_us: 1.0,
            p90_us: 1.0,
            p99_us: 1.0,
            p999_us: 1.0,
            max_us: 1.0,
            mean_us: 1.0,
            first_error: None,
        };
        Measured {
            target: target.into(),
            summary: Summary { seconds, ..summary },
        }
    }

    #[test]
    fn commits_per_second_over_the_measured_time() {
        let row = OnPostgres::new(2, measured(TWO_REPLICAS, 2.0), 3000);
        assert_eq!(row.commits_per_sec, 1500.0);
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["target"], TWO_REPLICAS);
        assert_eq!(json["commits_per_sec"], 1500.0);
        assert_eq!(json["p99_us"], 1.0);
    }

    #[test]
    fn the_section_has_a_row_per_target_and_no_commits_for_sqlite() {
        let replicas = Replicas {
            one: None,
            two: Some(OnPostgres::new(2, measured(TWO_REPLICAS, 2.0), 3000)),
            note: note(4),
        };
        let mut out = String::new();
        replicas.markdown(Some(&measured(SQLITE, 2.0)), &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("### 8. "));
        assert!(lines[2].ends_with("| PostgreSQL commits/s |"));
        assert_eq!(
            lines[4],
            "| fresh City on SQLite, durable | 500 | 0 | 1.0 | 1.0 | — |"
        );
        assert!(lines[5].starts_with("| 1 replica on PostgreSQL, durable | not measured |"));
        assert_eq!(
            lines[6],
            "| 2 replicas on PostgreSQL, durable | 500 | 0 | 1.0 | 1.0 | 1500 |"
        );
        assert!(out.contains("the 4 HTTP/2 connections"));
    }
}
