//! Running a stock kubectl binary against a kubeconfig, with a private `HOME` (so its discovery
//! cache starts empty) and no inherited `KUBECONFIG`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Failures setting up kubectl.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    /// The binary could not be run.
    #[error("cannot run {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `kubectl version --client -o json` did not give a minor version.
    #[error("{bin} did not report its client version: {output}")]
    Version {
        /// The binary.
        bin: PathBuf,
        /// What it printed.
        output: String,
    },
    /// The private home directory.
    #[error("temporary directory: {0}")]
    TempDir(#[from] std::io::Error),
}

/// What one kubectl run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The arguments (without the global `--kubeconfig`).
    pub args: Vec<String>,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether kubectl exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kubectl {} (exit {})\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code.map_or("signal".into(), |c| c.to_string()),
            self.stdout,
            self.stderr
        )
    }
}

/// One kubectl binary bound to one kubeconfig.
#[derive(Debug)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
    minor: u32,
}

impl Kubectl {
    /// Binds `bin` to `kubeconfig` and asks the binary for its version.
    pub fn new(bin: impl Into<PathBuf>, kubeconfig: impl Into<PathBuf>) -> Result<Kubectl, KubectlError> {
        let bin = bin.into();
        let minor = client_minor(&bin)?;
        Ok(Kubectl {
            bin,
            kubeconfig: kubeconfig.into(),
            home: tempfile::tempdir()?,
            minor,
        })
    }

    /// The client's minor version (27 for kubectl 1.27).
    pub fn minor(&self) -> u32 {
        self.minor
    }

    /// The binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The kubeconfig it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A command with the kubeconfig, the private home and `args`; `env` is added to the
    /// environment.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl to completion.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let args_owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match self.command(args, env).output() {
            Ok(out) => Output {
                args: args_owned,
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(e) => Output {
                args: args_owned,
                code: None,
                stdout: String::new(),
                stderr: format!("cannot run {}: {e}", self.bin.display()),
            },
        }
    }

    /// Starts kubectl in the background with stdout and stderr going to `log` (for `get -w`).
    pub fn spawn(&self, args: &[&str], log: &Path) -> std::io::Result<Child> {
        let file = std::fs::File::create(log)?;
        let err = file.try_clone()?;
        self.command(args, &[]).stdout(file).stderr(err).spawn()
    }
}

fn client_minor(bin: &Path) -> Result<u32, KubectlError> {
    let out = Command::new(bin)
        .args(["version", "--client", "-o", "json"])
        .env_remove("KUBECONFIG")
        .output()
        .map_err(|source| KubectlError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v["clientVersion"]["minor"]
                .as_str()?
                .trim_end_matches('+')
                .parse()
                .ok()
        })
        .ok_or(KubectlError::Version {
            bin: bin.to_path_buf(),
            output: text,
        })
}

/// The stock kubectl binaries in `dir` (default `$KEELSON_KUBE_CLIENTS` or
/// `/var/cache/keelson-kube-clients`), oldest first: `kubectl-1.27`, `kubectl-1.33`.
pub fn find_kubectls(dir: Option<&Path>) -> Vec<PathBuf> {
    let dir = dir.map_or_else(crate::tools::kube_clients_dir, Path::to_path_buf);
    crate::tools::KUBECTL_MINORS
        .iter()
        .map(|m| dir.join(format!("kubectl-1.{m}")))
        .filter(|p| p.exists())
        .collect()
}
