//! Closed-loop Kubernetes API workloads on ConfigMaps: creates, gets, and lists of 1 000 objects
//! (whole, or paged), driven by [`crate::driver::closed_loop`].

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams};

use crate::api::objects::config_map;
use crate::driver;
use crate::stats::{now_ns, xorshift};

/// Objects preloaded for the get and list cases.
pub const READ_OBJECTS: u64 = 1000;

/// What each request of a case does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiOp {
    /// Create a new ConfigMap with a 256-byte value.
    Create,
    /// Get one of the preloaded ConfigMaps.
    Get,
    /// List the preloaded ConfigMaps, in pages of `limit` (0: one request).
    List {
        /// Page size (`limit`), 0 for none.
        limit: u32,
    },
}

/// Name of preloaded object `i`.
pub fn read_name(i: u64) -> String {
    format!("cm-{i:06}")
}

/// One logical client.
pub struct ApiTask {
    api: Api<ConfigMap>,
    prefix: String,
    op: ApiOp,
    rng: u64,
}

impl ApiTask {
    /// Client `id` of a case: creates go to names `{prefix}{id}-{seq}`; reads use the preloaded objects.
    pub fn new(api: Api<ConfigMap>, case: &str, id: usize, op: ApiOp) -> Self {
        Self {
            api,
            prefix: format!("{case}-{id:03}-"),
            op,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 17),
        }
    }
}

impl driver::Client for ApiTask {
    async fn one(&mut self, seq: u64) -> Result<()> {
        match self.op {
            ApiOp::Create => {
                let cm = config_map(format!("{}{seq:010}", self.prefix), now_ns());
                self.api.create(&PostParams::default(), &cm).await?;
            }
            ApiOp::Get => {
                let i = xorshift(&mut self.rng) % READ_OBJECTS;
                self.api.get(&read_name(i)).await?;
            }
            ApiOp::List { limit } => {
                let n = list_all(&self.api, limit).await?;
                if n != READ_OBJECTS {
                    bail!("list returned {n} objects, expected {READ_OBJECTS}");
                }
            }
        }
        Ok(())
    }
}

/// Lists every object of `api`, following `continue` tokens with pages of `limit` (0: one request).
pub async fn list_all(api: &Api<ConfigMap>, limit: u32) -> Result<u64> {
    let mut n = 0u64;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default();
        if limit > 0 {
            lp = lp.limit(limit);
        }
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await?;
        n += page.items.len() as u64;
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() && limit > 0 => token = Some(t),
            _ => return Ok(n),
        }
    }
}
