//! Certificates made for one test run (rcgen): a CA and the leaf certificates it
//! signs, written as PEM files.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate authority that exists only for this test.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA called `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA's certificate to `path`.
    pub fn write_cert(&self, path: &Path) {
        std::fs::write(path, &self.cert_pem).expect("write CA certificate");
    }

    /// Signs a certificate for `names` (IP addresses become IP names) and writes it
    /// and its key.
    pub fn write_leaf(&self, names: &[&str], cert: &Path, key: &Path) {
        let leaf_key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        let leaf = params
            .signed_by(&leaf_key, &self.issuer)
            .expect("leaf certificate");
        std::fs::write(cert, leaf.pem()).expect("write certificate");
        std::fs::write(key, leaf_key.serialize_pem()).expect("write key");
    }
}
