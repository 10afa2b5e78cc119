//! A webhook receiver on 127.0.0.1, over plain HTTP or HTTPS with a self-signed certificate:
//! it keeps every delivery (headers and body) and answers 204, or 500 while told to refuse.
#![allow(dead_code, unreachable_pub)]

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its headers, names in lowercase.
    pub headers: HashMap<String, String>,
    /// Its raw body.
    pub body: Vec<u8>,
}

/// The receiver; its task ends with the test's runtime.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    /// Deliveries accepted.
    pub hits: Arc<Mutex<Vec<Hit>>>,
    /// Requests received, accepted or refused.
    pub attempts: Arc<AtomicUsize>,
    /// While false, every request is answered 500.
    pub accepting: Arc<AtomicBool>,
}

impl Receiver {
    /// Plain HTTP on a free port.
    pub async fn http() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, None)
    }

    /// Plain HTTP on `addr`.
    pub async fn http_on(addr: SocketAddr) -> Self {
        Self::serve(TcpListener::bind(addr).await.expect("bind"), None)
    }

    /// HTTPS on a free port, with a new self-signed certificate for 127.0.0.1, whose PEM is
    /// written to `ca_file` (for the node to trust).
    pub async fn https(ca_file: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, Some(self_signed(ca_file)))
    }

    /// HTTPS on `addr` with the certificate in `identity` (made by [`self_signed`]).
    pub async fn https_on(addr: SocketAddr, identity: TlsAcceptor) -> Self {
        Self::serve(TcpListener::bind(addr).await.expect("bind"), Some(identity))
    }

    fn serve(listener: TcpListener, tls: Option<TlsAcceptor>) -> Self {
        let receiver = Self {
            addr: listener.local_addr().expect("addr"),
            scheme: if tls.is_some() { "https" } else { "http" },
            hits: Arc::default(),
            attempts: Arc::default(),
            accepting: Arc::new(AtomicBool::new(true)),
        };
        let (hits, attempts, accepting) = (
            receiver.hits.clone(),
            receiver.attempts.clone(),
            receiver.accepting.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (hits, attempts, accepting, tls) = (
                    hits.clone(),
                    attempts.clone(),
                    accepting.clone(),
                    tls.clone(),
                );
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (hits, attempts, accepting) =
                                (hits.clone(), attempts.clone(), accepting.clone());
                            async move {
                                attempts.fetch_add(1, Ordering::SeqCst);
                                let headers = request
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect();
                                let body = request.into_body().collect().await?.to_bytes().to_vec();
                                let status = if accepting.load(Ordering::SeqCst) {
                                    hits.lock().expect("hits").push(Hit { headers, body });
                                    204
                                } else {
                                    500
                                };
                                let mut answer = hyper::Response::new(Full::new(Bytes::new()));
                                *answer.status_mut() =
                                    hyper::StatusCode::from_u16(status).expect("status");
                                Ok::<_, hyper::Error>(answer)
                            }
                        });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        receiver
    }

    /// The URL deliveries are POSTed to.
    pub fn url(&self) -> String {
        format!("{}://{}/hooks/contrail", self.scheme, self.addr)
    }

    /// The deliveries accepted so far.
    pub fn received(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

/// A TLS identity with a new self-signed certificate for 127.0.0.1, whose PEM is written to
/// `ca_file`.
pub fn self_signed(ca_file: &Path) -> TlsAcceptor {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate");
    std::fs::write(ca_file, cert.pem()).expect("certificate written");
    let key = rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der())
        .expect("private key");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(config))
}

/// Whether `hit` carries a valid signature under `secret`: `Contrail-Signature` is `v1=` and
/// the hex HMAC-SHA256 of `Contrail-Timestamp`, `.`, and the body.
pub fn signed(hit: &Hit, secret: &str) -> bool {
    use aws_lc_rs::hmac;
    let (Some(timestamp), Some(signature)) = (
        hit.headers.get("contrail-timestamp"),
        hit.headers.get("contrail-signature"),
    ) else {
        return false;
    };
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(&hit.body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, &message, &tag).is_ok()
}
