//! Test material made with the OpenSSL command line (`openssl` 3.x on PATH), shared by the
//! certs tests (`certs/tests/openssl_interop.rs`) and the hub's integration tests
//! (`tests/tests/seals.rs`). Test code only: a dev-dependency of `bohai-certs` and a
//! dependency of `bohai-tests`, never of a production crate. Every helper panics with
//! OpenSSL's output when a command fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The seal certificate profile as an `openssl x509 -extfile` file: keyUsage
/// digitalSignature + nonRepudiation (critical), extendedKeyUsage id-kp-documentSigning,
/// not a CA.
pub const SEAL_EXTENSIONS: &str = "basicConstraints=critical,CA:FALSE\n\
     keyUsage=critical,digitalSignature,nonRepudiation\n\
     extendedKeyUsage=1.3.6.1.5.5.7.3.36\n\
     subjectKeyIdentifier=hash\n\
     authorityKeyIdentifier=keyid\n";

/// The extensions of a subordinate (issuing) CA certificate.
pub const CA_EXTENSIONS: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\n\
     keyUsage=critical,keyCertSign,cRLSign\n\
     subjectKeyIdentifier=hash\n\
     authorityKeyIdentifier=keyid\n";

/// The `openssl` command line, run in one folder.
#[derive(Debug, Clone)]
pub struct Openssl {
    dir: PathBuf,
}

impl Openssl {
    /// Runs `openssl` with `dir` as the working folder (file names are relative to it).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The working folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `dir/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `openssl ARGS` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the openssl command line ({e}); install it"))
    }

    /// Runs `openssl ARGS`, panics unless it succeeds, and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `dir/name`.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        let path = self.path(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Reads `dir/name` as text.
    pub fn read(&self, name: &str) -> String {
        let path = self.path(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// A new P-256 key in `name` (SEC 1 `EC PRIVATE KEY` PEM).
    pub fn p256_key(&self, name: &str) {
        self.ok(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            name,
        ]);
    }

    /// Converts the key in `from` to PKCS#8 PEM (`PRIVATE KEY`) in `to`.
    pub fn pkcs8(&self, from: &str, to: &str) {
        self.ok(&["pkcs8", "-topk8", "-nocrypt", "-in", from, "-out", to]);
    }
}

/// A department's own certificate authority made with OpenSSL: a self-signed P-256 root
/// (`ca.key`, `ca.pem`) and an `openssl ca` database (`ca.cnf`, `index.txt`, `crlnumber`)
/// for revocations and v2 CRLs.
#[derive(Debug, Clone)]
pub struct DeptCa {
    openssl: Openssl,
}

/// The files of a seal certificate made by a [`DeptCa`].
#[derive(Debug, Clone)]
pub struct SealFiles {
    /// The certificate, PEM (relative to the CA's folder).
    pub cert: String,
    /// The private key, PKCS#8 PEM.
    pub key_pkcs8: String,
    /// The private key as `openssl ecparam` wrote it (SEC 1 PEM).
    pub key_sec1: String,
}

impl DeptCa {
    /// Makes the CA in `dir` with subject `subject` (OpenSSL `/C=CN/O=.../CN=...` form,
    /// UTF-8 allowed), valid for ten years.
    pub fn new(dir: &Path, subject: &str) -> Self {
        let openssl = Openssl::in_dir(dir);
        openssl.p256_key("ca.key");
        openssl.ok(&[
            "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650", "-utf8", "-subj",
            subject, "-out", "ca.pem",
        ]);
        openssl.write(
            "ca.cnf",
            "[ca]\ndefault_ca = dept\n\n[dept]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             certificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\n\
             default_crl_days = 7\ncrl_extensions = crl_ext\n\n[crl_ext]\n\
             authorityKeyIdentifier = keyid:always\n",
        );
        openssl.write("index.txt", "");
        openssl.write("crlnumber", "01\n");
        Self { openssl }
    }

    /// An issuing CA under this one, in `dir` (its own folder), with subject `subject`: its
    /// certificate (`ca.pem` there, also kept here as `NAME.pem` for revoking) is issued by
    /// this CA, and it issues seals and CRLs of its own, as an operator's two-level PKI does.
    pub fn subordinate(&self, name: &str, dir: &Path, subject: &str) -> DeptCa {
        std::fs::create_dir_all(dir).expect("the subordinate CA's folder");
        let files = self.issue(name, subject, CA_EXTENSIONS, 1825);
        let sub = DeptCa::new(dir, subject);
        // Replace its self-signed certificate and key with the ones this CA issued.
        std::fs::copy(self.openssl.path(&files.cert), sub.openssl.path("ca.pem"))
            .expect("the subordinate CA's certificate");
        std::fs::copy(
            self.openssl.path(&files.key_sec1),
            sub.openssl.path("ca.key"),
        )
        .expect("the subordinate CA's key");
        sub
    }

    /// The OpenSSL runner in the CA's folder.
    pub fn openssl(&self) -> &Openssl {
        &self.openssl
    }

    /// The CA certificate, PEM text.
    pub fn cert_pem(&self) -> String {
        self.openssl.read("ca.pem")
    }

    /// Issues a certificate named `name` (files `NAME.pem`, `NAME.key`, `NAME.p8.pem`) with
    /// subject `subject`, the extensions `extensions` (an `-extfile` text, e.g.
    /// [`SEAL_EXTENSIONS`]) and `days` of validity.
    pub fn issue(&self, name: &str, subject: &str, extensions: &str, days: u32) -> SealFiles {
        let o = &self.openssl;
        let files = SealFiles {
            cert: format!("{name}.pem"),
            key_pkcs8: format!("{name}.p8.pem"),
            key_sec1: format!("{name}.key"),
        };
        let csr = format!("{name}.csr");
        let ext = format!("{name}.ext");
        o.p256_key(&files.key_sec1);
        o.ok(&[
            "req",
            "-new",
            "-key",
            &files.key_sec1,
            "-utf8",
            "-subj",
            subject,
            "-out",
            &csr,
        ]);
        o.write(&ext, extensions);
        o.ok(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            &days.to_string(),
            "-sha256",
            "-extfile",
            &ext,
            "-out",
            &files.cert,
        ]);
        o.pkcs8(&files.key_sec1, &files.key_pkcs8);
        files
    }

    /// Issues a seal certificate with the seal profile ([`SEAL_EXTENSIONS`]), valid a year.
    pub fn issue_seal(&self, name: &str, subject: &str) -> SealFiles {
        self.issue(name, subject, SEAL_EXTENSIONS, 365)
    }

    /// Records the certificate in `cert` (PEM file name) as revoked (keyCompromise).
    pub fn revoke(&self, cert: &str) {
        self.openssl.ok(&[
            "ca",
            "-config",
            "ca.cnf",
            "-revoke",
            cert,
            "-crl_reason",
            "keyCompromise",
        ]);
    }

    /// Writes a v2 CRL of every revocation so far to `out` (PEM), valid 7 days from now, and
    /// returns its path.
    pub fn crl(&self, out: &str) -> PathBuf {
        self.openssl
            .ok(&["ca", "-config", "ca.cnf", "-gencrl", "-out", out]);
        self.openssl.path(out)
    }
}
