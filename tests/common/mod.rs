//! Test harness: real `keelson store` processes on loopback ports, `etcdctl` and `keelson kv`
//! runs, background commands whose output is read line by line. Everything started is killed
//! on drop (also when a test panics).
//!
//! The store backend comes from `KEELSON_TEST_STORE`: `raft` (default: a one-member raft group
//! on rocksdb) or `memory` (`keelson store --memory`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for a process to become ready or a condition to hold. A bound for failing
/// tests, not a timing assertion.
pub const WAIT: Duration = Duration::from_secs(60);

/// The `keelson` binary under test.
pub fn keelson_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// Which store implementation the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `keelson store --memory`.
    Memory,
    /// A raft member on rocksdb.
    Raft,
}

impl Backend {
    /// The backend chosen by `KEELSON_TEST_STORE` (default raft, or memory in builds without the
    /// `raft` feature).
    pub fn from_env() -> Backend {
        match std::env::var("KEELSON_TEST_STORE").as_deref() {
            Ok("memory") => Backend::Memory,
            Ok("raft") => Backend::Raft,
            _ if cfg!(feature = "raft") => Backend::Raft,
            _ => Backend::Memory,
        }
    }
}

/// A free loopback port (bound, then released, so a child can bind it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// Lines a child writes to one of its streams, read on a thread.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Lines {
    fn spawn(reader: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { rx, seen: Vec::new() }
    }

    /// Waits for a line matching `pred`, returning it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; lines so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits until at least `n` lines have been read; returns the first `n`.
    pub fn wait_lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        while self.seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("timed out waiting for {n} lines; got:\n{}", self.seen.join("\n")),
            }
        }
        self.seen[..n].to_vec()
    }
}

/// A child process killed on drop.
pub struct Proc {
    child: Child,
    /// Its stdout lines.
    pub stdout: Lines,
    /// Where its stderr goes.
    pub stderr_path: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout piped and stderr written to `stderr_path`.
    pub fn spawn(mut cmd: Command, stderr_path: PathBuf) -> Proc {
        let err = std::fs::File::create(&stderr_path).expect("create stderr file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = Lines::spawn(child.stdout.take().expect("stdout"));
        Proc {
            child,
            stdout,
            stderr_path,
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `keelson store`.
pub struct Member {
    /// The process.
    pub proc: Proc,
    /// Its name.
    pub name: String,
    /// Its first client URL.
    pub client_url: String,
    /// Its peer URL (empty in memory).
    pub peer_url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The hex member ID it printed.
    pub member_id: String,
    _tmp: Option<tempfile::TempDir>,
}

/// How to start a member.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// Its name.
    pub name: String,
    /// Backend.
    pub backend: Backend,
    /// Client URL to listen on (default `http://127.0.0.1:0`).
    pub client_url: String,
    /// Peer URL (default `http://127.0.0.1:<free>`).
    pub peer_url: Option<String>,
    /// `--initial-cluster`.
    pub initial_cluster: Option<String>,
    /// Join an existing cluster.
    pub existing: bool,
    /// Data directory (default: a new temp dir).
    pub data_dir: Option<PathBuf>,
    /// Shared PKI directory.
    pub pki_dir: Option<PathBuf>,
    /// Extra flags.
    pub extra: Vec<String>,
}

impl MemberSpec {
    /// A single member with defaults.
    pub fn new(name: &str, backend: Backend) -> MemberSpec {
        MemberSpec {
            name: name.into(),
            backend,
            client_url: "http://127.0.0.1:0".into(),
            peer_url: None,
            initial_cluster: None,
            existing: false,
            data_dir: None,
            pki_dir: None,
            extra: Vec::new(),
        }
    }

    /// Starts it and waits for its ready line. A peer port this helper picked
    /// itself can be taken by a parallel test between picking and binding; such
    /// a start is retried on another port.
    pub fn start(self) -> Member {
        let mut attempt = 0;
        loop {
            match self.clone().try_start() {
                Ok(member) => return member,
                Err(stderr)
                    if self.peer_url.is_none()
                        && attempt < 3
                        && stderr.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                Err(stderr) => panic!("keelson store did not become ready; stderr:\n{stderr}"),
            }
        }
    }

    fn try_start(self) -> Result<Member, String> {
        let (tmp, data_dir) = match &self.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let log_dir = data_dir.parent().unwrap_or(Path::new("/tmp")).to_path_buf();
        let mut cmd = Command::new(keelson_bin());
        cmd.args([
            "store",
            "--name",
            &self.name,
            "--listen-client-urls",
            &self.client_url,
        ]);
        cmd.arg("--data-dir").arg(&data_dir);
        if let Some(pki) = &self.pki_dir {
            cmd.arg("--pki-dir").arg(pki);
        }
        match self.backend {
            Backend::Memory => {
                cmd.arg("--memory");
            }
            Backend::Raft => {
                let peer = self
                    .peer_url
                    .clone()
                    .unwrap_or_else(|| format!("http://127.0.0.1:{}", free_port()));
                cmd.args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ]);
                if let Some(ic) = &self.initial_cluster {
                    cmd.args(["--initial-cluster", ic]);
                }
                if self.existing {
                    cmd.args(["--initial-cluster-state", "existing"]);
                }
            }
        }
        cmd.args(&self.extra);
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let stderr_path = log_dir.join(format!("{}-{}.stderr", self.name, std::process::id()));
        let mut proc = Proc::spawn(cmd, stderr_path);
        let ready = {
            let p = &mut proc;
            let deadline = Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match p.stdout.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                    Ok(line) => {
                        p.stdout.seen.push(line.clone());
                        if line.starts_with("keelson store ready:") {
                            break line;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                        if let Ok(Some(status)) = p.child.try_wait() {
                            return Err(format!("exited with {status}:\n{}", p.stderr()));
                        }
                    }
                    Err(_) => return Err(p.stderr()),
                }
            }
        };
        let field = |name: &str| {
            ready
                .split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_owned()
        };
        let client_url = field("client_urls")
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Member {
            name: self.name.clone(),
            client_url,
            peer_url: field("peer_url"),
            member_id: field("member_id"),
            data_dir,
            proc,
            _tmp: tmp,
        })
    }
}

impl Member {
    /// A single member on the backend chosen by the environment.
    pub fn start_default(name: &str) -> Member {
        MemberSpec::new(name, Backend::from_env()).start()
    }

    /// `host:port` of the client URL (what etcdctl wants).
    pub fn endpoint(&self) -> String {
        self.client_url
            .split_once("://")
            .map_or(self.client_url.clone(), |(_, r)| r.to_owned())
    }
}

/// The result of a finished command.
#[derive(Debug)]
pub struct Out {
    /// Exit status was success.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(
            self.ok,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn err(self) -> String {
        assert!(
            !self.ok,
            "command unexpectedly succeeded:\nstdout: {}",
            self.stdout
        );
        self.stderr
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn command");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for command");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `etcdctl` command (API v3) aimed at `endpoint`.
pub fn etcdctl_cmd(endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/bin/etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=20s")
        .args(args);
    cmd
}

/// Runs etcdctl against a member.
pub fn etcdctl(m: &Member, args: &[&str]) -> Out {
    run(etcdctl_cmd(&m.endpoint(), args), None)
}

/// Runs etcdctl with stdin.
pub fn etcdctl_stdin(m: &Member, args: &[&str], stdin: &str) -> Out {
    run(etcdctl_cmd(&m.endpoint(), args), Some(stdin))
}

/// Runs `keelson kv` against a member.
pub fn kv(m: &Member, args: &[&str]) -> Out {
    let mut cmd = Command::new(keelson_bin());
    cmd.args(["kv", "--endpoints", &m.client_url]).args(args);
    run(cmd, None)
}

/// Runs any command to completion.
pub fn run_cmd(cmd: Command) -> Out {
    run(cmd, None)
}

/// Starts a long-running etcdctl (e.g. `watch`) in the background.
pub fn etcdctl_background(m: &Member, args: &[&str], stderr_path: PathBuf) -> Proc {
    Proc::spawn(etcdctl_cmd(&m.endpoint(), args), stderr_path)
}

/// The store revision, read with `etcdctl get -w json`.
pub fn revision(m: &Member) -> i64 {
    let out = etcdctl(m, &["get", "revision-probe", "-w", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["header"]["revision"].as_i64().expect("header.revision")
}

/// Polls `check` until it returns true (bounded by [`WAIT`]).
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    conformance::tools::poll_until(what, WAIT, check);
}

/// A kubectl binary from `KEELSON_KUBE_CLIENTS` (scripts/get-kube-clients.sh puts them there);
/// these tests need it, so a missing one fails them.
pub fn kubectl(minor: u32) -> PathBuf {
    let dir = conformance::tools::kube_clients_dir();
    let path = dir.join(format!("kubectl-1.{minor}"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/get-kube-clients.sh {} 27 33",
        path.display(),
        dir.display()
    );
    path
}

/// A running `keelson server`, killed on drop.
pub struct KeelsonServer {
    /// The process.
    pub proc: Proc,
    /// Path of its admin kubeconfig.
    pub kubeconfig: String,
}

/// Starts `keelson server` with `args` on a free port; waits for its ready line.
pub fn start_server(data_dir: &Path, extra: &[&str]) -> KeelsonServer {
    let mut cmd = Command::new(keelson_bin());
    cmd.args(["server", "--secure-port", "0", "--data-dir"])
        .arg(data_dir)
        .args(extra);
    let log = data_dir.with_extension("stderr");
    let mut proc = Proc::spawn(cmd, log);
    let line = proc
        .stdout
        .wait_for("the ready line", |l| l.starts_with("Keelson is ready"));
    let kubeconfig = line
        .split("(kubeconfig: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no kubeconfig in {line:?}"))
        .to_string();
    KeelsonServer { proc, kubeconfig }
}

impl KeelsonServer {
    /// Runs kubectl 1.`minor` against it.
    pub fn kubectl(&self, minor: u32, args: &[&str]) -> Out {
        let mut cmd = Command::new(kubectl(minor));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run_cmd(cmd)
    }
}
