//! Registry authentication: `WWW-Authenticate` challenges (RFC 7235 / the distribution token
//! spec), credentials from `--creds`, `$REGISTRY_AUTH_FILE` or `~/.docker/config.json`, and the
//! base64 they are written in.

use std::collections::HashMap;
use std::path::PathBuf;

/// A parsed `WWW-Authenticate` header: the scheme (`bearer`, `basic`, lowercased) and its
/// parameters (`realm`, `service`, `scope`).
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parse `Scheme k="v", k2=v2`. Quoted values may hold commas and `\"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// `USER:PASSWORD` as given to `--creds`.
    pub fn parse(s: &str) -> Result<Credentials, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err("--creds expects USERNAME:PASSWORD".to_string()),
        }
    }

    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

/// The auth files read, in order: `$REGISTRY_AUTH_FILE` (if set), then
/// `~/.docker/config.json`. `husk image login` writes the first.
pub fn auth_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        files.push(f.into());
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        files.push(PathBuf::from(h).join(".docker/config.json"));
    }
    files
}

/// The keys `registry`'s credentials are looked up under: its name, and for docker.io also
/// Docker's historical keys.
pub fn auth_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![registry.to_string()];
    if registry == super::reference::DEFAULT_REGISTRY {
        keys.push("https://index.docker.io/v1/".to_string());
        keys.push("index.docker.io".to_string());
    }
    keys
}

/// Credentials for `registry` from the auth file Docker and podman write:
/// `$REGISTRY_AUTH_FILE`, else `~/.docker/config.json` (`auths.<registry>.auth`, base64 of
/// `user:password`). docker.io is also looked up under Docker's historical key.
pub fn from_auth_files(registry: &str) -> Result<Option<Credentials>, String> {
    let files = auth_files();
    let keys = auth_keys(registry);
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("read {}: {e}", f.display())),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", f.display()))?;
        for k in &keys {
            let Some(auth) = v["auths"][k]["auth"].as_str() else {
                continue;
            };
            let raw = base64_decode(auth)
                .ok_or_else(|| format!("{}: auths.{k}.auth is not base64", f.display()))?;
            let text = String::from_utf8(raw)
                .map_err(|_| format!("{}: auths.{k}.auth is not UTF-8", f.display()))?;
            return Credentials::parse(&text)
                .map(Some)
                .map_err(|_| format!("{}: auths.{k}.auth is not user:password", f.display()));
        }
    }
    Ok(None)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "user:pässword", "aladdin:opensesame"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(
            base64_encode(b"aladdin:opensesame"),
            "YWxhZGRpbjpvcGVuc2VzYW1l"
        );
        assert!(base64_decode("a*b").is_none());
    }
}
