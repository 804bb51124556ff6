//! Parsing the URL lists and durations of etcd-style flags.

use std::time::Duration;

use anyhow::{Context, bail};

/// A `scheme://host:port` URL of a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// `https` (TLS) or `http`.
    pub tls: bool,
    /// Host name or IP, without IPv6 brackets.
    pub host: String,
    /// Port (0: any free port).
    pub port: u16,
}

impl ListenUrl {
    /// Parses `http://host:port` or `https://host:port` (a trailing `/` is allowed).
    pub fn parse(url: &str) -> anyhow::Result<ListenUrl> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("URL {url:?} has no scheme"))?;
        let tls = match scheme {
            "https" => true,
            "http" => false,
            other => bail!("URL {url:?}: scheme {other:?} is not http or https"),
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            bail!("URL {url:?} must not have a path");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, port) = v6
                .split_once("]:")
                .with_context(|| format!("URL {url:?} has no port"))?;
            (host, port)
        } else {
            authority
                .rsplit_once(':')
                .with_context(|| format!("URL {url:?} has no port"))?
        };
        if host.is_empty() {
            bail!("URL {url:?} has no host");
        }
        let port = port
            .parse::<u16>()
            .with_context(|| format!("URL {url:?}: bad port {port:?}"))?;
        Ok(ListenUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL with another port (the one actually bound).
    pub fn with_port(&self, port: u16) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{port}", self.host)
        } else {
            format!("{scheme}://{}:{port}", self.host)
        }
    }

    /// Whether both URLs name the same host (every loopback address naming this machine).
    pub fn same_host(&self, other: &ListenUrl) -> bool {
        self.host.eq_ignore_ascii_case(&other.host) || (self.is_loopback() && other.is_loopback())
    }

    /// True for hosts that only the local machine can reach.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Splits a comma-separated flag value into its non-empty items.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `--initial-cluster name=url,name=url`.
pub fn parse_initial_cluster(value: &str) -> anyhow::Result<Vec<(String, String)>> {
    split_list(value)
        .into_iter()
        .map(|item| {
            let (name, url) = item
                .split_once('=')
                .with_context(|| format!("--initial-cluster item {item:?} is not name=URL"))?;
            ListenUrl::parse(url)?;
            Ok((name.to_owned(), url.to_owned()))
        })
        .collect()
}

/// Parses a positive duration flag: a Go duration (`500ms`, `2s`, `1h30m`) or a bare number of
/// seconds.
pub fn parse_duration(value: &str) -> anyhow::Result<Duration> {
    let d = api_util::duration::parse_flag(value).with_context(|| format!("bad duration {value:?}"))?;
    if d.is_zero() {
        bail!("duration {value:?} must be positive");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_compare() {
        let same = |a: &str, b: &str| {
            ListenUrl::parse(a)
                .unwrap()
                .same_host(&ListenUrl::parse(b).unwrap())
        };
        assert!(same("https://10.0.0.1:1", "http://10.0.0.1:2"));
        assert!(same("https://Node-A:1", "https://node-a:2"));
        assert!(same("http://127.0.0.1:1", "http://[::1]:2"));
        assert!(same("http://localhost:1", "http://127.0.0.2:2"));
        assert!(!same("https://node-a:1", "https://node-b:1"));
        assert!(!same("http://127.0.0.1:1", "https://10.0.0.1:1"));
    }

    #[test]
    fn urls_parse() {
        let u = ListenUrl::parse("https://127.0.0.1:2379").unwrap();
        assert_eq!(
            u,
            ListenUrl {
                tls: true,
                host: "127.0.0.1".into(),
                port: 2379
            }
        );
        assert!(u.is_loopback());
        assert_eq!(u.with_port(4000), "https://127.0.0.1:4000");
        let v6 = ListenUrl::parse("http://[::1]:0/").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.bind_addr()),
            ("::1", 0, "[::1]:0".to_owned())
        );
        for bad in [
            "127.0.0.1:1",
            "ftp://a:1",
            "http://a",
            "http://:1",
            "http://a:1/x",
            "http://a:x",
        ] {
            assert!(ListenUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_and_durations_parse() {
        assert_eq!(
            parse_initial_cluster("a=http://h:1, b=https://g:2").unwrap(),
            vec![
                ("a".into(), "http://h:1".into()),
                ("b".into(), "https://g:2".into())
            ]
        );
        assert!(parse_initial_cluster("a").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
