//! A Kafka-protocol broker of a test's own (tansu, from `POLYCLINIC_TEST_TANSU`), so that a
//! test may pause it or put TLS in front of it without disturbing the others, and a test
//! certificate authority for that TLS.
//!
//! tansu speaks plaintext only; [`TestBroker::start_tls`] puts a TLS terminator (rustls) in
//! front of it and makes tansu advertise the terminator's address, so every connection the
//! Kafka client makes (bootstrap and the broker it is then sent to) goes through TLS, as
//! against a cluster that requires it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority made for one test; its certificate is written to a PEM file that
/// clients are pointed at (`kafka.ssl_ca_location`).
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem_file: PathBuf,
}

impl TestCa {
    /// A new CA called `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        let pem_file = std::env::temp_dir().join(format!(
            "polyclinic-test-ca-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&pem_file, issuer.pem()).expect("writing the CA's PEM file");
        Self { issuer, pem_file }
    }

    /// The PEM file of the CA's certificate.
    pub fn pem_file(&self) -> &Path {
        &self.pem_file
    }

    /// A server certificate for 127.0.0.1 and localhost, signed by this CA.
    fn server_config(&self) -> Arc<ServerConfig> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("a server name");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, "test broker");
        let key = KeyPair::generate().expect("a server key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        let chain = vec![
            CertificateDer::from(certificate.der().to_vec()),
            self.issuer.der().clone(),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a certificate and its key");
        Arc::new(config)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        std::fs::remove_file(&self.pem_file).ok();
    }
}

/// A tansu broker of this test's own, optionally behind TLS.
pub struct TestBroker {
    child: std::process::Child,
    /// What clients connect to (`kafka.brokers`).
    pub address: String,
    /// The terminator's current certificate (replaced by [`TestBroker::present`]).
    tls: Option<Arc<RwLock<Arc<ServerConfig>>>>,
    terminator: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// A plaintext broker on a port of its own.
    pub async fn start() -> Self {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let child = spawn_tansu(&address, &address);
        wait_for(&address).await;
        Self {
            child,
            address,
            tls: None,
            terminator: None,
        }
    }

    /// A broker reached only through TLS, presenting a certificate signed by `ca`.
    pub async fn start_tls(ca: &TestCa) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the TLS port");
        let address = listener.local_addr().expect("a bound address").to_string();
        let plain = format!("127.0.0.1:{}", free_port());
        // tansu sends clients to the address it advertises: the terminator's.
        let child = spawn_tansu(&plain, &address);
        wait_for(&plain).await;
        let current = Arc::new(RwLock::new(ca.server_config()));
        let terminator = tokio::spawn(terminate(listener, current.clone(), plain));
        Self {
            child,
            address,
            tls: Some(current),
            terminator: Some(terminator),
        }
    }

    /// From the next connection on, presents a certificate signed by `ca` (as an operator
    /// who fixed the broker's certificate would).
    pub fn present(&self, ca: &TestCa) {
        let tls = self.tls.as_ref().expect("a broker behind TLS");
        *tls.write().expect("the certificate lock") = ca.server_config();
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the broker process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(terminator) = self.terminator.take() {
            terminator.abort();
        }
        self.signal("-CONT");
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn spawn_tansu(listen: &str, advertise: &str) -> std::process::Child {
    let binary = std::env::var("POLYCLINIC_TEST_TANSU").unwrap_or_else(|_| "tansu".into());
    std::process::Command::new(&binary)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://{listen}"),
            "--advertised-listener-url",
            &format!("tcp://{advertise}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {binary} (set POLYCLINIC_TEST_TANSU): {err}"))
}

async fn wait_for(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the private broker did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Accepts TLS connections and relays each, decrypted, to the broker at `plain`.
async fn terminate(listener: TcpListener, current: Arc<RwLock<Arc<ServerConfig>>>, plain: String) {
    while let Ok((client, _)) = listener.accept().await {
        let config = current.read().expect("the certificate lock").clone();
        let plain = plain.clone();
        tokio::spawn(async move {
            // A client that refuses the certificate ends its handshake: nothing to relay.
            let Ok(mut tls) = TlsAcceptor::from(config).accept(client).await else {
                return;
            };
            let Ok(mut broker) = TcpStream::connect(&plain).await else {
                return;
            };
            tokio::io::copy_bidirectional(&mut tls, &mut broker)
                .await
                .ok();
        });
    }
}
