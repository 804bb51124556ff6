//! `keelson kv`: an etcdctl-like client of the etcd v3 API (any etcd or Keelson store).
//!
//! Output follows etcdctl's "simple" format: `get` prints key and value lines, `put` prints `OK`,
//! `del` the number deleted, `watch` the event type, key and value per event, and so on.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use etcd_client::{
    Certificate, Client, ConnectOptions, DeleteOptions, EventType, GetOptions, Identity,
    LeaseTimeToLiveOptions, MemberAddOptions, PutOptions, TlsOptions, WatchOptions,
};

/// Flags and command of `keelson kv`.
#[derive(Debug, clap::Args)]
pub struct KvArgs {
    /// Comma-separated endpoints (`http://host:port` or `https://host:port`).
    #[arg(long, global = true, default_value = "https://127.0.0.1:2379")]
    endpoints: String,
    /// CA certificate to verify the server with (PEM).
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, global = true)]
    cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long = "key", id = "key_file", global = true)]
    key_file: Option<PathBuf>,
    /// Timeout of one request.
    #[arg(long, global = true, default_value = "5s")]
    command_timeout: String,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KvCommand {
    /// Reads a key or range.
    Get {
        /// The key (or the prefix with --prefix).
        key: String,
        /// End of the range `[key, range_end)`.
        range_end: Option<String>,
        /// Read every key with this prefix.
        #[arg(long)]
        prefix: bool,
        /// Read at this revision.
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Return at most this many keys.
        #[arg(long, default_value_t = 0)]
        limit: i64,
        /// Print keys only.
        #[arg(long)]
        keys_only: bool,
        /// Print values only.
        #[arg(long)]
        print_value_only: bool,
        /// Print only the number of keys.
        #[arg(long)]
        count_only: bool,
    },
    /// Writes a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Attach this lease (hex ID, as printed by `lease grant`).
        #[arg(long)]
        lease: Option<String>,
        /// Print the previous value.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Deletes a key or range.
    Del {
        /// The key (or the prefix with --prefix).
        key: String,
        /// End of the range `[key, range_end)`.
        range_end: Option<String>,
        /// Delete every key with this prefix.
        #[arg(long)]
        prefix: bool,
        /// Print the deleted keys and values.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Prints changes to a key or range until interrupted.
    Watch {
        /// The key (or the prefix with --prefix).
        key: String,
        /// Watch every key with this prefix.
        #[arg(long)]
        prefix: bool,
        /// Start from this revision (replaying history).
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Print the previous value of each changed key.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Cluster membership.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// This endpoint's status.
    Status,
    /// Snapshots of the store.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Discards history below a revision.
    Compact {
        /// The revision.
        revision: i64,
    },
    /// Leases.
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum MemberCommand {
    /// Lists the members.
    List,
    /// Adds a member.
    Add {
        /// Its name (informational; the member sets it when it starts).
        name: String,
        /// Its peer URLs, comma-separated.
        #[arg(long)]
        peer_urls: String,
        /// Add it as a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member (hex ID).
    Remove {
        /// The member ID (hex).
        id: String,
    },
    /// Promotes a learner to a voting member (hex ID).
    Promote {
        /// The member ID (hex).
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum SnapshotCommand {
    /// Saves a snapshot of the endpoint's store to a file.
    Save {
        /// The file.
        file: PathBuf,
    },
    /// Creates a member's data directory from a snapshot file (then start the member with
    /// `keelson store --data-dir DIR`; it founds a new cluster).
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The new member's data directory (must not exist yet).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, clap::Subcommand)]
enum LeaseCommand {
    /// Creates a lease with a TTL in seconds.
    Grant {
        /// The TTL.
        ttl: i64,
    },
    /// Revokes a lease (hex ID), deleting its keys.
    Revoke {
        /// The lease ID (hex).
        id: String,
    },
    /// Lists the leases.
    List,
    /// Keeps a lease alive (hex ID) until interrupted, or once with --once.
    KeepAlive {
        /// The lease ID (hex).
        id: String,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
    /// A lease's remaining TTL.
    Timetolive {
        /// The lease ID (hex).
        id: String,
        /// Also list the attached keys.
        #[arg(long)]
        keys: bool,
    },
}

/// Runs one `keelson kv` command.
pub async fn run(args: KvArgs) -> anyhow::Result<()> {
    if let KvCommand::Snapshot {
        command: SnapshotCommand::Restore { file, data_dir },
    } = &args.command
    {
        return restore(file.clone(), data_dir.clone()).await;
    }
    let timeout = crate::urls::parse_duration(&args.command_timeout)?;
    let endpoints = crate::urls::split_list(&args.endpoints);
    let mut options = ConnectOptions::new().with_connect_timeout(timeout);
    if endpoints.iter().any(|e| e.starts_with("https://")) {
        options = options.with_tls(tls_options(&args)?);
    }
    let mut client = tokio::time::timeout(timeout, Client::connect(&endpoints, Some(options)))
        .await
        .context("connecting timed out")?
        .with_context(|| format!("connecting to {}", endpoints.join(",")))?;
    let streaming = matches!(
        args.command,
        KvCommand::Watch { .. }
            | KvCommand::Lease {
                command: LeaseCommand::KeepAlive { once: false, .. }
            }
    );
    let fut = command(&mut client, args.command, &endpoints);
    if streaming {
        fut.await
    } else {
        tokio::time::timeout(timeout.max(Duration::from_secs(1)), fut)
            .await
            .context("request timed out")?
    }
}

fn tls_options(args: &KvArgs) -> anyhow::Result<TlsOptions> {
    let mut tls = TlsOptions::new();
    if let Some(ca) = &args.cacert {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    match (&args.cert, &args.key_file) {
        (Some(cert), Some(key)) => {
            let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => bail!("--cert and --key go together"),
    }
    Ok(tls)
}

async fn command(client: &mut Client, cmd: KvCommand, endpoints: &[String]) -> anyhow::Result<()> {
    match cmd {
        KvCommand::Get {
            key,
            range_end,
            prefix,
            rev,
            limit,
            keys_only,
            print_value_only,
            count_only,
        } => {
            let mut o = GetOptions::new().with_revision(rev).with_limit(limit);
            if prefix {
                o = o.with_prefix();
            } else if let Some(end) = range_end {
                o = o.with_range(end);
            }
            if keys_only {
                o = o.with_keys_only();
            }
            if count_only {
                o = o.with_count_only();
            }
            let resp = client.get(key, Some(o)).await?;
            if count_only {
                println!("{}", resp.count());
                return Ok(());
            }
            for kv in resp.kvs() {
                if !print_value_only {
                    println!("{}", String::from_utf8_lossy(kv.key()));
                }
                if !keys_only {
                    println!("{}", String::from_utf8_lossy(kv.value()));
                }
            }
        }
        KvCommand::Put {
            key,
            value,
            lease,
            prev_kv,
        } => {
            let mut o = PutOptions::new();
            if let Some(lease) = lease {
                o = o.with_lease(parse_hex_i64(&lease)?);
            }
            if prev_kv {
                o = o.with_prev_key();
            }
            let resp = client.put(key, value, Some(o)).await?;
            println!("OK");
            if let Some(prev) = resp.prev_key() {
                println!("{}", String::from_utf8_lossy(prev.key()));
                println!("{}", String::from_utf8_lossy(prev.value()));
            }
        }
        KvCommand::Del {
            key,
            range_end,
            prefix,
            prev_kv,
        } => {
            let mut o = DeleteOptions::new();
            if prefix {
                o = o.with_prefix();
            } else if let Some(end) = range_end {
                o = o.with_range(end);
            }
            if prev_kv {
                o = o.with_prev_key();
            }
            let resp = client.delete(key, Some(o)).await?;
            println!("{}", resp.deleted());
            for kv in resp.prev_kvs() {
                println!("{}", String::from_utf8_lossy(kv.key()));
                println!("{}", String::from_utf8_lossy(kv.value()));
            }
        }
        KvCommand::Watch {
            key,
            prefix,
            rev,
            prev_kv,
        } => watch(client, key, prefix, rev, prev_kv).await?,
        KvCommand::Member { command } => member(client, command).await?,
        KvCommand::Status => {
            let s = client.status().await?;
            let header = s.header().context("status response has no header")?;
            println!(
                "{}, {:x}, {}, {}, {}, {}, {}, {}, {}, {}",
                endpoints.first().map(String::as_str).unwrap_or(""),
                header.member_id(),
                s.version(),
                human_size(s.db_size()),
                s.leader() == header.member_id(),
                s.is_learner(),
                s.raft_term(),
                s.raft_index(),
                s.raft_applied_index(),
                s.errors().join(" "),
            );
        }
        KvCommand::Snapshot {
            command: SnapshotCommand::Save { file },
        } => save_snapshot(client, &file).await?,
        KvCommand::Snapshot {
            command: SnapshotCommand::Restore { .. },
        } => unreachable!("handled before connecting"),
        KvCommand::Compact { revision } => {
            client.compact(revision, None).await?;
            println!("compacted revision {revision}");
        }
        KvCommand::Lease { command } => lease(client, command).await?,
    }
    Ok(())
}

async fn watch(
    client: &mut Client,
    key: String,
    prefix: bool,
    rev: i64,
    prev_kv: bool,
) -> anyhow::Result<()> {
    let mut o = WatchOptions::new().with_start_revision(rev);
    if prefix {
        o = o.with_prefix();
    }
    if prev_kv {
        o = o.with_prev_key();
    }
    let mut stream = client.watch(key, Some(o)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.compact_revision() != 0 {
            bail!(
                "watch canceled: required revision has been compacted (compact revision {})",
                resp.compact_revision()
            );
        }
        if resp.canceled() {
            bail!("watch canceled: {}", resp.cancel_reason());
        }
        for ev in resp.events() {
            let kind = match ev.event_type() {
                EventType::Put => "PUT",
                EventType::Delete => "DELETE",
            };
            println!("{kind}");
            if let Some(prev) = ev.prev_kv() {
                println!("{}", String::from_utf8_lossy(prev.key()));
                println!("{}", String::from_utf8_lossy(prev.value()));
            }
            if let Some(kv) = ev.kv() {
                println!("{}", String::from_utf8_lossy(kv.key()));
                println!("{}", String::from_utf8_lossy(kv.value()));
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

async fn member(client: &mut Client, cmd: MemberCommand) -> anyhow::Result<()> {
    let print = |m: &etcd_client::Member| {
        let started = if m.name().is_empty() {
            "unstarted"
        } else {
            "started"
        };
        println!(
            "{:x}, {}, {}, {}, {}, {}",
            m.id(),
            started,
            m.name(),
            m.peer_urls().join(","),
            m.client_urls().join(","),
            m.is_learner()
        );
    };
    match cmd {
        MemberCommand::List => {
            for m in client.member_list().await?.members() {
                print(m);
            }
        }
        MemberCommand::Add {
            name,
            peer_urls,
            learner,
        } => {
            let urls = crate::urls::split_list(&peer_urls);
            let o = if learner {
                MemberAddOptions::new().with_is_learner()
            } else {
                MemberAddOptions::new()
            };
            let resp = client.member_add(urls, Some(o)).await?;
            let m = resp.member().context("member add response names no member")?;
            let cluster_id = resp.header().map_or(0, |h| h.cluster_id());
            println!("Member {:x} added to cluster {cluster_id:x}", m.id());
            let mut initial: Vec<String> = Vec::new();
            for other in resp.member_list() {
                let n = if other.id() == m.id() {
                    name.as_str()
                } else {
                    other.name()
                };
                for u in other.peer_urls() {
                    initial.push(format!("{n}={u}"));
                }
            }
            println!();
            println!("KEELSON_NAME=\"{name}\"");
            println!("KEELSON_INITIAL_CLUSTER=\"{}\"", initial.join(","));
            println!(
                "KEELSON_INITIAL_ADVERTISE_PEER_URLS=\"{}\"",
                m.peer_urls().join(",")
            );
            println!("KEELSON_INITIAL_CLUSTER_STATE=\"existing\"");
        }
        MemberCommand::Remove { id } => {
            let id = parse_hex_u64(&id)?;
            let resp = client.member_remove(id).await?;
            let cluster_id = resp.header().map_or(0, |h| h.cluster_id());
            println!("Member {id:x} removed from cluster {cluster_id:x}");
        }
        MemberCommand::Promote { id } => {
            let id = parse_hex_u64(&id)?;
            let resp = client.member_promote(id).await?;
            let cluster_id = resp.header().map_or(0, |h| h.cluster_id());
            println!("Member {id:x} promoted in cluster {cluster_id:x}");
        }
    }
    Ok(())
}

async fn lease(client: &mut Client, cmd: LeaseCommand) -> anyhow::Result<()> {
    match cmd {
        LeaseCommand::Grant { ttl } => {
            let resp = client.lease_grant(ttl, None).await?;
            println!("lease {:x} granted with TTL({}s)", resp.id(), resp.ttl());
        }
        LeaseCommand::Revoke { id } => {
            let id = parse_hex_i64(&id)?;
            client.lease_revoke(id).await?;
            println!("lease {id:x} revoked");
        }
        LeaseCommand::List => {
            let resp = client.leases().await?;
            println!("found {} leases", resp.leases().len());
            for l in resp.leases() {
                println!("{:x}", l.id());
            }
        }
        LeaseCommand::KeepAlive { id, once } => {
            let id = parse_hex_i64(&id)?;
            let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
            loop {
                keeper.keep_alive().await?;
                let Some(resp) = stream.message().await? else {
                    bail!("keep-alive stream ended")
                };
                if resp.ttl() <= 0 {
                    bail!("lease {id:x} expired or revoked");
                }
                println!("lease {:x} keepalived with TTL({})", resp.id(), resp.ttl());
                if once {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs_f64((resp.ttl() as f64 / 3.0).max(0.5))).await;
            }
        }
        LeaseCommand::Timetolive { id, keys } => {
            let id = parse_hex_i64(&id)?;
            let o = if keys {
                LeaseTimeToLiveOptions::new().with_keys()
            } else {
                LeaseTimeToLiveOptions::new()
            };
            let resp = client.lease_time_to_live(id, Some(o)).await?;
            if resp.ttl() == -1 {
                println!("lease {id:x} already expired");
                return Ok(());
            }
            let mut line = format!(
                "lease {id:x} granted with TTL({}s), remaining({}s)",
                resp.granted_ttl(),
                resp.ttl()
            );
            if keys {
                let names: Vec<_> = resp
                    .keys()
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect();
                line.push_str(&format!(", attached keys([{}])", names.join(" ")));
            }
            println!("{line}");
        }
    }
    Ok(())
}

async fn save_snapshot(client: &mut Client, file: &std::path::Path) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let part = file.with_extension("part");
    let mut out = tokio::fs::File::create(&part)
        .await
        .with_context(|| format!("creating {}", part.display()))?;
    let mut stream = client.snapshot().await?;
    let mut size = 0u64;
    while let Some(resp) = stream.message().await? {
        out.write_all(resp.blob()).await?;
        size += resp.blob().len() as u64;
    }
    out.sync_all().await?;
    drop(out);
    let data = tokio::fs::read(&part).await?;
    storage_etcd::unwrap_snapshot(&data).context("the received snapshot is damaged")?;
    tokio::fs::rename(&part, file).await?;
    println!("Snapshot saved at {} ({size} bytes)", file.display());
    Ok(())
}

#[cfg(feature = "raft")]
async fn restore(file: PathBuf, data_dir: PathBuf) -> anyhow::Result<()> {
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<storage_raft::RestoreSummary> {
        let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let inner = storage_etcd::unwrap_snapshot(&data)?;
        Ok(storage_raft::restore_snapshot(inner, &data_dir)?)
    })
    .await??;
    println!(
        "restored snapshot: revision {}, {} keys",
        summary.revision, summary.keys
    );
    Ok(())
}

#[cfg(not(feature = "raft"))]
async fn restore(_: PathBuf, _: PathBuf) -> anyhow::Result<()> {
    bail!("this keelson was built without the `raft` feature: snapshot restore needs it")
}

fn parse_hex_u64(s: &str) -> anyhow::Result<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("{s:?} is not a hex ID"))
}

fn parse_hex_i64(s: &str) -> anyhow::Result<i64> {
    i64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("{s:?} is not a hex ID"))
}

/// Bytes as etcdctl prints them (`20 kB`).
fn human_size(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n >= 1e9 => format!("{:.0} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.0} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}
