//! Command-line flags of `keelson server` (kube-apiserver's names).

use std::path::PathBuf;

use crate::auth::AuthConfig;

/// Authentication, ServiceAccount token and audit flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthFlags {
    /// CSV file of static bearer tokens: token,user,uid,"group1,group2".
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Let requests without credentials in as system:anonymous (group system:unauthenticated).
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    /// Let bootstrap tokens (`bootstrap.kubernetes.io/token` Secrets in kube-system)
    /// authenticate, as nodes joining the cluster use them.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub enable_bootstrap_token_auth: bool,
    /// Issuer (`iss`) of ServiceAccount tokens.
    #[arg(long, default_value = "https://kubernetes.default.svc.cluster.local")]
    pub service_account_issuer: String,
    /// PKCS#8 EC P-256 key that signs ServiceAccount tokens (default: <data-dir>/pki/sa.key, created
    /// on first start).
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// Longest lifetime of a requested ServiceAccount token (`90s`, `30m`, `48h`; 0: no cap).
    #[arg(long, default_value = "0", value_parser = parse_duration_seconds)]
    pub service_account_max_token_expiration: u64,
    /// Audit log file (JSON lines); needs --audit-policy-file.
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// Audit policy (audit.k8s.io/v1 Policy, YAML).
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// EncryptionConfiguration (apiserver.config.k8s.io/v1) for encryption at rest: aesgcm,
    /// aescbc, secretbox or identity per resource.
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// Name of this node (its kubelet kubeconfig authenticates as system:node:<name>); default:
    /// the host name.
    #[arg(long)]
    pub node_name: Option<String>,
}

impl AuthFlags {
    /// Copies the flags into `config`.
    pub fn apply(self, config: &mut AuthConfig) {
        config.token_auth_file = self.token_auth_file;
        config.anonymous = self.anonymous_auth;
        config.enable_bootstrap_token_auth = self.enable_bootstrap_token_auth;
        config.service_account_issuer = self.service_account_issuer;
        config.service_account_signing_key_file = self.service_account_signing_key_file;
        config.service_account_max_token_expiration = self.service_account_max_token_expiration;
        config.audit_log_path = self.audit_log_path;
        config.audit_policy_file = self.audit_policy_file;
        config.encryption_provider_config = self.encryption_provider_config;
        if let Some(n) = self.node_name {
            config.node_name = n;
        }
    }
}

/// `90`, `90s`, `30m`, `1h30m` as whole seconds (a Go duration or a bare number of seconds).
fn parse_duration_seconds(s: &str) -> Result<u64, String> {
    api_util::duration::parse_flag(s)
        .map(|d| d.as_secs())
        .map_err(|e| e.to_string())
}
