//! The one Kubernetes API call the installer makes: a JSON merge patch of its own node's
//! labels (`PATCH /api/v1/nodes/<node>`), with the pod's ServiceAccount token, over TLS checked
//! against the cluster CA the pod gets. A dedicated tiny client (ureq + rustls) instead of a
//! Kubernetes client library: one request, no watch, no async runtime.

use std::sync::Arc;
use std::time::Duration;

/// The label the RuntimeClass `dockerish` selects nodes by (`scheduling.nodeSelector`).
pub const LABEL_KEY: &str = "dockerish.io/installed";
pub const LABEL_VALUE: &str = "true";
/// Where a pod's ServiceAccount token and cluster CA are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const PATCH_CONTENT_TYPE: &str = "application/merge-patch+json";

/// Set (`Some(value)`) or remove (`None`) the label on `node`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRequest {
    pub node: String,
    pub value: Option<String>,
}

impl LabelRequest {
    /// The request for `node`, whose name goes into the URL path: checked to be a DNS subdomain
    /// as Kubernetes requires of node names.
    pub fn new(node: &str, value: Option<&str>) -> Result<LabelRequest, String> {
        let ok = !node.is_empty()
            && node.len() <= 253
            && node.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !p.starts_with('-') && !p.ends_with('-'));
        if !ok {
            return Err(format!("NODE_NAME {node:?} is not a Kubernetes node name (lowercase DNS subdomain)"));
        }
        Ok(LabelRequest { node: node.to_string(), value: value.map(str::to_string) })
    }

    pub fn path(&self) -> String {
        format!("/api/v1/nodes/{}", self.node)
    }

    /// The merge patch: the label's value, or `null` to remove it.
    pub fn body(&self) -> String {
        let v = match &self.value {
            Some(v) => format!("\"{v}\""),
            None => "null".into(),
        };
        format!("{{\"metadata\":{{\"labels\":{{\"{LABEL_KEY}\":{v}}}}}}}")
    }

    /// One line saying what would be sent (the dry-run output; no token).
    pub fn describe(&self) -> String {
        format!("PATCH {} Content-Type: {PATCH_CONTENT_TYPE} {}", self.path(), self.body())
    }
}

/// How to reach the API server.
pub struct Api {
    /// `https://host:port` (IPv6 hosts in brackets).
    pub base: String,
    pub token: String,
    /// The cluster CA, PEM.
    pub ca_pem: Vec<u8>,
}

impl Api {
    /// The in-cluster settings every pod gets: `KUBERNETES_SERVICE_HOST`/`_PORT` and the
    /// ServiceAccount's token and CA under `dir`.
    pub fn in_cluster(dir: &str) -> Result<Api, String> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| "KUBERNETES_SERVICE_HOST is not set: not running in a Kubernetes pod (set LABEL=dry-run or LABEL=none)".to_string())?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let read = |name: &str| std::fs::read(format!("{dir}/{name}")).map_err(|e| format!("{dir}/{name}: {e} (the pod needs its ServiceAccount token: automountServiceAccountToken)"));
        let token = String::from_utf8(read("token")?).map_err(|_| format!("{dir}/token is not text"))?.trim().to_string();
        let ca_pem = read("ca.crt")?;
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        Ok(Api { base: format!("https://{host}:{port}"), token, ca_pem })
    }

    /// Sends the patch; `Err` explains a refusal (RBAC, admission policy, unknown node).
    pub fn send(&self, req: &LabelRequest) -> Result<(), String> {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&self.ca_pem) {
            if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| format!("the cluster CA: {e}"))? {
                certs.push(c);
            }
        }
        if certs.is_empty() {
            return Err("the cluster CA file holds no certificate".into());
        }
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs))).build();
        let agent = ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).timeout_global(Some(Duration::from_secs(30))).build().new_agent();
        let url = format!("{}{}", self.base, req.path());
        let mut resp = agent
            .patch(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .content_type(PATCH_CONTENT_TYPE)
            .send(req.body().as_bytes())
            .map_err(|e| format!("PATCH {url}: {e}"))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        // The API server answers with a Status object whose `message` says why.
        let status_message = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["message"].as_str().map(str::to_string));
        let message = status_message.unwrap_or_else(|| body.trim().chars().take(300).collect());
        let hint = match status {
            401 => " (the ServiceAccount token was not accepted)",
            403 => " (the ServiceAccount needs `patch` on nodes, deploy/kubernetes/rbac.yaml, and the admission policy lets it change only this label on its own node)",
            404 => " (no such node: NODE_NAME must be the pod's spec.nodeName)",
            _ => "",
        };
        Err(format!("PATCH {url}: HTTP {status}: {message}{hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    #[test]
    fn request_bodies_set_and_remove_the_label() {
        let set = LabelRequest::new("node-a.example", Some("true")).unwrap();
        assert_eq!(set.path(), "/api/v1/nodes/node-a.example");
        assert_eq!(set.body(), r#"{"metadata":{"labels":{"dockerish.io/installed":"true"}}}"#);
        let unset = LabelRequest::new("node-a", None).unwrap();
        assert_eq!(unset.body(), r#"{"metadata":{"labels":{"dockerish.io/installed":null}}}"#);
        for bad in ["", "Node", "a/../b", "a..b", "-a", "a b", "a?x=1"] {
            assert!(LabelRequest::new(bad, None).is_err(), "{bad:?} accepted");
        }
    }

    /// The fake server's thread: the request it got (head, body), or why it got none.
    type Served = std::thread::JoinHandle<Result<(String, String), String>>;

    /// An HTTPS server on 127.0.0.1 with a certificate from a throw-away CA: answers one
    /// request with `status` and `body`, and hands back the request it got (head, body).
    fn fake_api(status: u16, body: &'static str) -> (Api, Served) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        // ring, as on the client side (ureq's `rustls` feature).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || -> Result<(String, String), String> {
            let e = |e: std::io::Error| e.to_string();
            let (tcp, _) = listener.accept().map_err(e)?;
            let conn = rustls::ServerConnection::new(Arc::new(config)).map_err(|x| x.to_string())?;
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                tls.read_line(&mut line).map_err(e)?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse().ok())).unwrap_or(0);
            let mut req_body = vec![0; len];
            tls.read_exact(&mut req_body).map_err(e)?;
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let stream = tls.get_mut();
            stream.write_all(reply.as_bytes()).map_err(e)?;
            stream.conn.send_close_notify();
            stream.flush().map_err(e)?;
            Ok((head, String::from_utf8_lossy(&req_body).into_owned()))
        });
        (Api { base: format!("https://127.0.0.1:{port}"), token: "secret-token".into(), ca_pem: ca.pem().into_bytes() }, server)
    }

    #[test]
    fn the_patch_reaches_the_api_server_as_kubernetes_expects() {
        let (api, server) = fake_api(200, "{}");
        let req = LabelRequest::new("node-a", Some(LABEL_VALUE)).unwrap();
        api.send(&req).unwrap();
        let (head, body) = server.join().unwrap().unwrap();
        let lower = head.to_ascii_lowercase();
        assert!(head.starts_with("PATCH /api/v1/nodes/node-a HTTP/1.1\r\n"), "{head}");
        assert!(lower.contains("authorization: bearer secret-token\r\n"), "{head}");
        assert!(lower.contains("content-type: application/merge-patch+json\r\n"), "{head}");
        assert_eq!(body, req.body());
    }

    #[test]
    fn a_refusal_says_what_is_missing() {
        let (api, server) = fake_api(403, r#"{"kind":"Status","message":"nodes \"node-a\" is forbidden: User cannot patch"}"#);
        let e = api.send(&LabelRequest::new("node-a", None).unwrap()).unwrap_err();
        server.join().unwrap().unwrap();
        assert!(e.contains("HTTP 403") && e.contains("is forbidden") && e.contains("rbac.yaml"), "{e}");
    }

    #[test]
    fn a_server_outside_the_cluster_ca_is_not_trusted() {
        let (mut api, server) = fake_api(200, "{}");
        let other_key = rcgen::KeyPair::generate().unwrap();
        let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        api.ca_pem = other.self_signed(&other_key).unwrap().pem().into_bytes();
        let e = api.send(&LabelRequest::new("node-a", None).unwrap()).unwrap_err();
        assert!(e.contains("invalid peer certificate"), "{e}");
        assert!(server.join().unwrap().is_err(), "the server got a request through an untrusted connection");
    }
}
