//! Electronic seals end to end against the real PostgreSQL: the city CA, seals for two
//! departments with their images, sealing and verifying a file with the `bohai` binary,
//! tampering, revocation and the CRL (read by `openssl crl`), coverage, `seal show`, and the
//! HTTP API (department boundary, verify, list without keys, one seal, its certificate chain
//! and image, OpenAPI); and seals imported under an operator CA, whose CRLs come from
//! `pki.crls`.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::path::Path;
use std::process::Output;

use bohai_certs_testkit::{DeptCa, Openssl};
use bohai_hub::seals::service::{hex_lower, reissue_if_due, sha256};
use bohai_hub::seals::SealsService;
use bohai_tests::trust::problem_codes as codes;
use bohai_tests::{bohai, prepared_config, write_config, write_config_with_master_key, RunningHub};
use serde_json::{json, Value};

fn run(config_file: &Path, args: &[&str]) -> Output {
    bohai(config_file).args(args).output().unwrap()
}

fn ok(config_file: &Path, args: &[&str]) -> String {
    let out = run(config_file, args);
    assert!(
        out.status.success(),
        "bohai {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Standard base64 with padding (the tests crate has no base64 dependency).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// Multi-threaded: the in-process hub must keep running (its registry sync holds locks)
// while this test waits on `bohai` child processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seals_are_made_used_verified_revoked_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = prepared_config().await.unwrap();
    let master = dir.path().join("state/master.key");
    config.pki.master_key_file = master.clone();
    let file = write_config_with_master_key(&config, dir.path()).unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();

    // The CA, once; the master key file is made with mode 0600.
    let pems = ok(&file, &["seal", "init-ca"]);
    assert_eq!(pems.matches("BEGIN CERTIFICATE").count(), 2, "{pems}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&master).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(&file, &["seal", "init-ca"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // Seals for two departments.
    let market: Value = serde_json::from_str(&ok(
        &file,
        &["seal", "issue", "market-regulation", "--json"],
    ))
    .unwrap();
    // The police seal shows an image of its own (a PNG header is all the hub checks).
    let png = dir.path().join("police.png");
    let mut png_bytes =
        b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x40\0\0\0\x40\x08\x06\0\0\0".to_vec();
    png_bytes.extend_from_slice(b"rest of the picture");
    std::fs::write(&png, &png_bytes).unwrap();
    let police: Value = serde_json::from_str(&ok(
        &file,
        &[
            "seal",
            "issue",
            "public-security",
            "--type",
            "contract",
            "--days",
            "365",
            "--image",
            png.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    let market_id = market["seal_id"].as_str().unwrap().to_owned();
    let police_id = police["seal_id"].as_str().unwrap().to_owned();
    // The whole department code, then the serial.
    assert!(market_id.starts_with("market-regulation-"), "{market_id}");
    assert!(market["name"].as_str().unwrap().ends_with("电子公章"));
    assert_eq!(police["seal_type"], "contract");
    assert_eq!(market["image_media_type"], "image/svg+xml");
    assert_eq!(police["image_media_type"], "image/png");
    let not_an_image = run(
        &file,
        &[
            "seal",
            "issue",
            "public-security",
            "--image",
            file.to_str().unwrap(),
        ],
    );
    assert!(!not_an_image.status.success());
    assert!(
        String::from_utf8_lossy(&not_an_image.stderr).contains("neither PNG nor SVG"),
        "{}",
        String::from_utf8_lossy(&not_an_image.stderr)
    );

    // The generated image is the round red seal with the department's name, and the record
    // names it by digest and type.
    let svg_file = dir.path().join("market.svg");
    ok(
        &file,
        &[
            "seal",
            "image",
            &market_id,
            "-o",
            svg_file.to_str().unwrap(),
        ],
    );
    let svg = std::fs::read(&svg_file).unwrap();
    let svg_text = String::from_utf8(svg.clone()).unwrap();
    assert!(
        svg_text.starts_with("<svg") && svg_text.contains("<circle"),
        "{svg_text}"
    );
    for ch in "盘锦市市场监督管理局".chars() {
        assert!(svg_text.contains(&format!(">{ch}</text>")), "{ch} missing");
    }
    let shown: Value =
        serde_json::from_str(&ok(&file, &["seal", "show", &market_id, "--json"])).unwrap();
    assert_eq!(shown["record"]["picture_digest"], hex_lower(&sha256(&svg)));
    assert_eq!(shown["record"]["picture_type"], "SVG");
    assert_eq!(shown["record"]["maker_signature_valid"], true);
    assert_eq!(shown["image"]["matches_record"], true);
    assert_eq!(shown["seal"]["state"], "valid");
    assert_eq!(
        shown["certificate"]["extended_key_usage"][0],
        "documentSigning"
    );
    assert_eq!(shown["chain"].as_array().unwrap().len(), 1);
    let human = ok(&file, &["seal", "show", &police_id]);
    assert!(
        human.contains("image/png") && human.contains("matches the record"),
        "{human}"
    );
    assert!(!run(&file, &["seal", "show", "no-such-seal"])
        .status
        .success());

    // The list has both and no secret.
    let listed = ok(&file, &["seal", "list", "--json"]);
    let list: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let secrets: Vec<(String,)> = sqlx::query_as(
        "SELECT key_encrypted FROM seals UNION ALL SELECT issuing_key_encrypted FROM pki_ca \
         UNION ALL SELECT root_key_encrypted FROM pki_ca",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(secrets.len(), 4);
    let master_hex = std::fs::read_to_string(&master).unwrap();
    for (secret,) in &secrets {
        assert!(secret.starts_with("v1."));
        assert!(!listed.contains(secret.as_str()));
        let nonce = secret.split('.').nth(1).unwrap();
        assert!(!listed.contains(nonce));
    }
    assert!(!listed.contains(master_hex.trim()));
    assert!(!listed.contains("PRIVATE KEY") && !listed.contains("key_encrypted"));

    // Seal a file and verify it: VALID, exit 0.
    let doc = dir.path().join("批复.txt");
    std::fs::write(&doc, "关于同意设立盘锦市某某有限公司的批复\n").unwrap();
    let doc_s = doc.to_str().unwrap();
    ok(
        &file,
        &["seal", "sign", "--dept", "market-regulation", doc_s],
    );
    let sig = dir.path().join("批复.txt.sig");
    let sig_s = sig.to_str().unwrap();
    let sig_pem = std::fs::read_to_string(&sig).unwrap();
    assert!(sig_pem.starts_with("-----BEGIN BOHAI SEAL SIGNATURE-----"));
    let report: Value =
        serde_json::from_str(&ok(&file, &["seal", "verify", doc_s, sig_s, "--json"])).unwrap();
    assert_eq!(report["overall"], "VALID", "{report:#}");
    // The hub holds the seal and its image, so the image is checked against the record.
    let image_line = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "seal_image")
        .unwrap();
    assert_eq!(image_line["result"], "pass");
    let human = ok(&file, &["seal", "verify", doc_s, sig_s]);
    assert!(human.starts_with("VALID"), "{human}");

    // Coverage: two valid seals among the registry's departments.
    let coverage: Value =
        serde_json::from_str(&ok(&file, &["seal", "coverage", "--json"])).unwrap();
    let total: (i64,) = sqlx::query_as("SELECT count(*) FROM departments")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(coverage["departments_total"], total.0);
    assert_eq!(coverage["valid"], 2);
    assert_eq!(coverage["none"], total.0 - 2);
    let listed_departments = coverage["departments"].as_array().unwrap().len();
    assert_eq!(
        Some(u64::try_from(listed_departments).unwrap()),
        coverage["departments_total"].as_u64()
    );

    // A tampered document: INVALID, a non-zero exit, DOCUMENT_HASH_MISMATCH.
    std::fs::write(&doc, "关于同意设立盘锦市某某有限公司的批复（已修改）\n").unwrap();
    let tampered = run(&file, &["seal", "verify", doc_s, sig_s, "--json"]);
    assert_eq!(tampered.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&tampered.stdout).unwrap();
    assert_eq!(report["overall"], "INVALID");
    assert_eq!(codes(&report), vec!["DOCUMENT_HASH_MISMATCH".to_owned()]);
    std::fs::write(&doc, "关于同意设立盘锦市某某有限公司的批复\n").unwrap();

    // Revocation: the CRL is reissued and the verifier uses it.
    ok(
        &file,
        &["seal", "revoke", &market_id, "--reason", "key_compromise"],
    );
    let revoked = run(&file, &["seal", "verify", doc_s, sig_s, "--json"]);
    assert_eq!(revoked.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&revoked.stdout).unwrap();
    assert_eq!(report["overall"], "INVALID");
    assert!(
        codes(&report).contains(&"CERT_REVOKED".to_owned()),
        "{report:#}"
    );
    let twice = run(
        &file,
        &["seal", "revoke", &market_id, "--reason", "superseded"],
    );
    assert!(!twice.status.success());
    let refused = run(
        &file,
        &["seal", "sign", "--dept", "market-regulation", doc_s],
    );
    assert!(!refused.status.success());

    let coverage: Value =
        serde_json::from_str(&ok(&file, &["seal", "coverage", "--json"])).unwrap();
    assert_eq!(
        (coverage["valid"].as_u64(), coverage["revoked"].as_u64()),
        (Some(1), Some(1))
    );

    // The API.
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let client = reqwest::Client::new();

    // The CRL: DER that openssl reads, listing the revoked serial; PEM on request.
    let r = client.get(hub.url("/api/v1/pki/crl")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pkix-crl");
    let der = r.bytes().await.unwrap();
    let crl_file = dir.path().join("city.crl");
    std::fs::write(&crl_file, &der).unwrap();
    let text = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl_file)
        .output()
        .unwrap();
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).unwrap().to_uppercase();
    let serial = market["serial_hex"]
        .as_str()
        .unwrap()
        .trim_start_matches("00")
        .to_uppercase();
    assert!(text.contains(&serial), "{text}");
    assert!(text.contains("KEY COMPROMISE"), "{text}");
    // openssl verify accepts the valid seal certificate against root and issuing CA, and
    // with -crl_check rejects the revoked one.
    let ca_lines: Vec<String> = pems
        .split_inclusive("-----END CERTIFICATE-----")
        .map(|p| p.trim_start().to_owned() + "\n")
        .collect();
    std::fs::write(dir.path().join("root.pem"), &ca_lines[0]).unwrap();
    std::fs::write(dir.path().join("issuing.pem"), &ca_lines[1]).unwrap();
    for (id, name) in [(&market_id, "market.pem"), (&police_id, "police.pem")] {
        let (cert,): (Vec<u8>,) = sqlx::query_as("SELECT cert_der FROM seals WHERE seal_id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
        std::fs::write(dir.path().join(format!("{name}.der")), cert).unwrap();
        let conv = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "x509",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.der"),
                "-out",
                name,
            ])
            .output()
            .unwrap();
        assert!(conv.status.success());
    }
    let verify_cert = |extra: &[&str], leaf: &str| {
        std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem"])
            .args(extra)
            .arg(leaf)
            .output()
            .unwrap()
    };
    assert!(verify_cert(&[], "police.pem").status.success());
    assert!(verify_cert(&[], "market.pem").status.success());
    let crl_check = ["-crl_check", "-CRLfile", "city.crl.pem"];
    let crl_pem = client
        .get(hub.url("/api/v1/pki/crl"))
        .header("Accept", "application/x-pem-file")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(dir.path().join("city.crl.pem"), crl_pem).unwrap();
    assert!(verify_cert(&crl_check, "police.pem").status.success());
    let rejected = verify_cert(&crl_check, "market.pem");
    assert!(!rejected.status.success());
    assert!(
        String::from_utf8_lossy(&rejected.stdout).contains("revoked")
            || String::from_utf8_lossy(&rejected.stderr).contains("revoked")
    );

    let pem = client
        .get(hub.url("/api/v1/pki/crl"))
        .header("Accept", "application/x-pem-file")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");

    // Signing: 401 without a token, 403 with another department's seal, 200 with one's own.
    let police_token = bohai_tests::token(&db, "public-security").await;
    let sign_url = |id: &str| hub.url(&format!("/api/v1/seals/{id}/sign"));
    let r = client
        .post(sign_url(&police_id))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(sign_url(&market_id))
        .bearer_auth(&police_token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = std::fs::read(&doc).unwrap();
    let r = client
        .post(sign_url(&police_id))
        .bearer_auth(&police_token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let signed: Value = r.json().await.unwrap();
    assert_eq!(signed["seal_id"], police_id.as_str());
    let r = client
        .post(sign_url(&police_id))
        .bearer_auth(&police_token)
        .json(&json!({"sha256": signed["document_sha256"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(sign_url(&police_id))
        .bearer_auth(&police_token)
        .json(&json!({"sha256": "zz"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Verify over the API: VALID for the hub's signature, the file's for the revoked seal,
    // 400 for malformed input.
    let verify = |payload: Value| {
        let client = client.clone();
        let url = hub.url("/api/v1/seals/verify");
        async move { client.post(url).json(&payload).send().await.unwrap() }
    };
    let r = verify(
        json!({"document_sha256": signed["document_sha256"], "signature": signed["signature_pem"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["overall"], "VALID", "{report:#}");
    let r = verify(json!({"document": base64(&body), "signature": sig_pem})).await;
    let report: Value = r.json().await.unwrap();
    assert!(
        codes(&report).contains(&"CERT_REVOKED".to_owned()),
        "{report:#}"
    );
    for bad in [
        json!({"document_sha256": "00", "signature": sig_pem}),
        json!({"signature": sig_pem}),
        json!({"document": "!!", "signature": sig_pem}),
        json!({"document": "", "signature": "-----BEGIN BOHAI SEAL SIGNATURE-----\nAAAA\n-----END BOHAI SEAL SIGNATURE-----\n"}),
        json!({"document": "", "signature": base64(&[0x30, 0x03, 0x02, 0x01])}),
    ] {
        let r = verify(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }

    // The list and coverage over the API; no secret in the list.
    let listed = client
        .get(hub.url("/api/v1/seals"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    for (secret,) in &secrets {
        assert!(!listed.contains(secret.as_str()));
    }
    let coverage: Value = client
        .get(hub.url("/api/v1/seals/coverage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(coverage["valid"], 1);

    // One seal, its certificate chain (PEM) and its image.
    let get = |path: String| {
        let request = client.get(hub.url(&path));
        async move { request.send().await.unwrap() }
    };
    let r = get(format!("/api/v1/seals/{market_id}")).await;
    assert_eq!(r.status(), 200);
    let details: Value = r.json().await.unwrap();
    assert_eq!(details["seal"]["state"], "revoked");
    assert_eq!(details["record"]["seal_id"], market_id.as_str());
    let r = get("/api/v1/seals/no-such-seal".to_owned()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    let r = get(format!("/api/v1/seals/{police_id}/certificate")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-pem-file");
    let chain = r.text().await.unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    std::fs::write(dir.path().join("police-chain.pem"), &chain).unwrap();
    let leaf =
        Openssl::in_dir(dir.path()).ok(&["x509", "-in", "police-chain.pem", "-noout", "-serial"]);
    assert!(
        leaf.to_uppercase()
            .contains(&police["serial_hex"].as_str().unwrap().to_uppercase()),
        "{leaf}"
    );
    let r = get(format!("/api/v1/seals/{market_id}/image")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), svg.as_slice());
    let r = get(format!("/api/v1/seals/{police_id}/image")).await;
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), png_bytes.as_slice());

    // The OpenAPI document lists the new paths.
    let doc: Value = client
        .get(hub.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/seals",
        "/api/v1/seals/coverage",
        "/api/v1/seals/{id}/sign",
        "/api/v1/seals/verify",
        "/api/v1/pki/crl",
        "/api/v1/seals/{id}",
        "/api/v1/seals/{id}/certificate",
        "/api/v1/seals/{id}/image",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }

    // The root key is exported (0600) and removed; init-ca --force then replaces the CA.
    let root_key = dir.path().join("root.key");
    ok(
        &file,
        &[
            "seal",
            "export-root-key",
            "-o",
            root_key.to_str().unwrap(),
            "--remove",
        ],
    );
    assert!(std::fs::read_to_string(&root_key)
        .unwrap()
        .contains("BEGIN PRIVATE KEY"));
    let again = run(
        &file,
        &[
            "seal",
            "export-root-key",
            "-o",
            dir.path().join("again.key").to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());

    // The scheduled reissue: not due before half the validity (7 days) has passed, due after.
    let now = chrono_now(&db).await;
    let latest = |db: sqlx::PgPool| async move {
        let (n,): (i64,) = sqlx::query_as("SELECT max(number) FROM crls")
            .fetch_one(&db)
            .await
            .unwrap();
        n
    };
    let before = latest(db.clone()).await;
    assert!(!reissue_if_due(&db, &config.pki, now, None).await.unwrap());
    assert_eq!(latest(db.clone()).await, before);
    let later = now + std::time::Duration::from_secs(4 * 24 * 3600);
    assert!(reissue_if_due(&db, &config.pki, later, None).await.unwrap());
    assert_eq!(latest(db.clone()).await, before + 1);

    // init-ca --force replaces the CA: the old seals no longer verify.
    ok(&file, &["seal", "init-ca", "--force"]);
    let replaced = run(&file, &["seal", "verify", doc_s, sig_s, "--json"]);
    assert_ne!(replaced.status.code(), Some(0));
}

/// The database's clock, so the test does not depend on this machine's.
async fn chrono_now(db: &sqlx::PgPool) -> sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc> {
    let (now,): (sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>,) =
        sqlx::query_as("SELECT now()").fetch_one(db).await.unwrap();
    now
}

/// `base` plus a `[pki]` section with the master key and `extra` lines.
fn with_pki(file: &Path, base: &str, master: &Path, extra: &str) {
    std::fs::write(
        file,
        format!(
            "{base}[pki]\nmaster_key_file = \"{}\"\n{extra}",
            master.display()
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn a_seal_made_under_an_operator_anchor_is_imported_only_when_the_anchor_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A department CA and seal made with the openssl command line.
    let mut config = prepared_config().await.unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let code = &registry.department("public-security").unwrap().credit_code;
    let ca = DeptCa::new(d, "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA");
    let seal = ca.issue_seal(
        "seal",
        &format!("/C=CN/O=盘锦市公安局/organizationIdentifier={code}/CN=盘锦市公安局公章"),
    );

    let master = d.join("master.key");
    config.pki.master_key_file = master.clone();
    let file = write_config(&config, d).unwrap();
    let base = std::fs::read_to_string(&file).unwrap();
    with_pki(&file, &base, &master, "");
    ok(&file, &["seal", "init-ca"]);
    let import = [
        "seal",
        "import",
        "public-security",
        "--cert",
        &seal.cert,
        "--key",
        &seal.key_pkcs8,
        "--json",
    ];
    // Not under a configured anchor: refused.
    let refused = bohai(&file).current_dir(d).args(import).output().unwrap();
    assert!(!refused.status.success());
    // With the department CA as an anchor: imported, usable, and verifiable.
    let anchor = format!("trust_anchors = [\"{}\"]\n", d.join("ca.pem").display());
    with_pki(&file, &base, &master, &anchor);
    let out = bohai(&file).current_dir(d).args(import).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(imported["imported"], true);
    assert_eq!(imported["name"], "盘锦市公安局公章");
    // The same CA's certificate naming another department's credit code (traffic police's)
    // is not public security's seal: refused, whatever CA made it; nor is one naming no
    // credit code (a name alone is no checkable identity).
    let traffic = &registry.department("traffic-police").unwrap().credit_code;
    let other = ca.issue_seal(
        "other",
        &format!("/C=CN/O=盘锦市公安局交通警察支队/organizationIdentifier={traffic}/CN=交警公章"),
    );
    let nameless = ca.issue_seal("nameless", "/C=CN/O=盘锦市公安局交通警察支队/CN=交警公章");
    for (files, says) in [
        (&other, "not that department's seal"),
        (&nameless, "names no credit code"),
    ] {
        let refused = bohai(&file)
            .current_dir(d)
            .args([
                "seal",
                "import",
                "public-security",
                "--cert",
                &files.cert,
                "--key",
                &files.key_pkcs8,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{says}: {stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(imported["image_media_type"], "image/svg+xml");
    assert!(imported["seal_id"]
        .as_str()
        .unwrap()
        .starts_with("public-security-"));
    let doc = d.join("doc.txt");
    std::fs::write(&doc, "imported seal").unwrap();
    ok(
        &file,
        &[
            "seal",
            "sign",
            "--dept",
            "public-security",
            doc.to_str().unwrap(),
        ],
    );
    // The verdict and exit code of `bohai seal verify` on the sealed document.
    let verify = || {
        let out = run(
            &file,
            &[
                "seal",
                "verify",
                doc.to_str().unwrap(),
                d.join("doc.txt.sig").to_str().unwrap(),
                "--json",
            ],
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (report, out.status.code())
    };
    // No CRL of the department CA: revocation unknown, INDETERMINATE.
    let (report, exit) = verify();
    assert_eq!(report["overall"], "INDETERMINATE", "{report:#}");
    assert_eq!(codes(&report), vec!["REVOCATION_UNKNOWN".to_owned()]);
    assert_eq!(exit, Some(3));

    // The department CA's CRL in pki.crls: VALID while the seal is not listed.
    let crl = ca.crl("dept.crl");
    let crls = format!("{anchor}crls = [\"{}\"]\n", crl.display());
    with_pki(&file, &base, &master, &crls);
    let (report, exit) = verify();
    assert_eq!(report["overall"], "VALID", "{report:#}");
    assert_eq!(exit, Some(0));

    // The department revokes the seal and publishes a new CRL in the same file: INVALID.
    ca.revoke(&seal.cert);
    ca.crl("dept.crl");
    let (report, exit) = verify();
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert_eq!(codes(&report), vec!["CERT_REVOKED".to_owned()]);
    assert_eq!(exit, Some(2));

    // A CRL naming the configured anchor as its issuer but signed by another key (a CA of the
    // same name made elsewhere) is a configuration error.
    std::fs::create_dir_all(d.join("impostor")).unwrap();
    let impostor = DeptCa::new(
        &d.join("impostor"),
        "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA",
    );
    let forged = impostor.crl("forged.crl");
    let bad = format!("{anchor}crls = [\"{}\"]\n", forged.display());
    with_pki(&file, &base, &master, &bad);
    let refused = run(&file, &["seal", "list"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("pki.crls") && stderr.contains("signature"),
        "{stderr}"
    );
}

#[tokio::test]
async fn revoking_an_imported_seal_reaches_seal_and_licence_verification_online_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut config = prepared_config().await.unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let code = &registry.department("public-security").unwrap().credit_code;
    // The department's own CA and seal (openssl), naming the department by its credit code.
    let ca = DeptCa::new(d, "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA");
    let seal = ca.issue_seal(
        "seal",
        &format!("/C=CN/O=盘锦市公安局/organizationIdentifier={code}/CN=盘锦市公安局公章"),
    );
    let master = d.join("master.key");
    config.pki.master_key_file = master.clone();
    let file = write_config(&config, d).unwrap();
    let base = std::fs::read_to_string(&file).unwrap();
    let crl = ca.crl("dept.crl");
    with_pki(
        &file,
        &base,
        &master,
        &format!(
            "trust_anchors = [\"{}\"]\ncrls = [\"{}\"]\n",
            d.join("ca.pem").display(),
            crl.display()
        ),
    );
    let pems = ok(&file, &["seal", "init-ca"]);
    ok(&file, &["seal", "issue", "data-administration"]);
    let imported: Value = serde_json::from_str(&ok(
        &file,
        &[
            "seal",
            "import",
            "public-security",
            "--cert",
            d.join(&seal.cert).to_str().unwrap(),
            "--key",
            d.join(&seal.key_pkcs8).to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    let seal_id = imported["seal_id"].as_str().unwrap().to_owned();

    // A document sealed, and a residence permit issued, with the imported seal.
    let doc = d.join("doc.txt");
    std::fs::write(&doc, "imported seal").unwrap();
    ok(
        &file,
        &[
            "seal",
            "sign",
            "--dept",
            "public-security",
            doc.to_str().unwrap(),
        ],
    );
    let holder = d.join("holder.json");
    let examples = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("licences/residence-permit/examples/valid.jsonl"),
    )
    .unwrap();
    std::fs::write(&holder, examples.lines().next().unwrap()).unwrap();
    let permit = d.join("permit.jws");
    ok(
        &file,
        &[
            "licence",
            "issue",
            "--type",
            "residence-permit",
            "--holder",
            holder.to_str().unwrap(),
            "-o",
            permit.to_str().unwrap(),
        ],
    );
    // The offline verifier pins the city root, and the department's CA for seals on licences.
    let city_root = d.join("city-root.pem");
    std::fs::write(&city_root, bohai_tests::city_root_pem(&pems)).unwrap();
    let verdicts = || {
        let report = |args: &[&str]| -> (String, Vec<String>) {
            let out = run(&file, args);
            let report: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
            (
                report["overall"].as_str().unwrap().to_owned(),
                codes(&report),
            )
        };
        let bundle = d.join("bundle.jws");
        ok(
            &file,
            &["licence", "bundle", "-o", bundle.to_str().unwrap()],
        );
        let sig = d.join("doc.txt.sig");
        [
            report(&[
                "seal",
                "verify",
                doc.to_str().unwrap(),
                sig.to_str().unwrap(),
                "--json",
            ]),
            report(&["licence", "verify", permit.to_str().unwrap(), "--json"]),
            report(&[
                "licence",
                "verify",
                permit.to_str().unwrap(),
                "--json",
                "--offline",
                bundle.to_str().unwrap(),
                "--root",
                city_root.to_str().unwrap(),
                "--operator-roots",
                d.join("ca.pem").to_str().unwrap(),
            ]),
        ]
    };
    // The department CA's CRL (pki.crls) is used for licences too: VALID everywhere.
    for (overall, codes) in verdicts() {
        assert_eq!((overall.as_str(), codes), ("VALID", vec![]));
    }

    // The city revokes the imported seal. The department's CA does not list it (nor could
    // the city's CRL): the registry's revocation reaches every verification.
    ok(
        &file,
        &["seal", "revoke", &seal_id, "--reason", "key_compromise"],
    );
    for (overall, codes) in verdicts() {
        assert_eq!(
            (overall.as_str(), codes),
            ("INVALID", vec!["CERT_REVOKED".to_owned()])
        );
    }

    // The department's CA, still an operator anchor, makes itself a fresh certificate for the
    // revoked seal's department and seals a permit with it. It chains, its CA's CRL does not
    // list it and its credit code is the department's: only the registry knows it is no seal.
    let fresh = ca.issue_seal(
        "fresh",
        &format!("/C=CN/O=盘锦市公安局/organizationIdentifier={code}/CN=盘锦市公安局公章"),
    );
    let key = bohai_tests::trust::seal_key_made_by(&ca, &fresh, "public-security").unwrap();
    let real =
        bohai_tests::trust::licence_claims(&std::fs::read_to_string(&permit).unwrap()).unwrap();
    let mut again = real.licence.clone();
    // Sealed after the certificate was made (the chain is judged at issuance); within the
    // clock skew of the verification.
    again.issued_at = bohai_hub::licences::service::whole_seconds(chrono::Utc::now())
        + chrono::Duration::seconds(2);
    let resealed =
        bohai_certs::licence::seal_licence(&key, again, real.status.status_list).unwrap();
    std::fs::write(&permit, resealed).unwrap();
    let [_, online, offline] = verdicts();
    for (overall, codes) in [online, offline] {
        assert_eq!(
            (overall.as_str(), codes),
            ("INVALID", vec!["SEAL_NOT_REGISTERED".to_owned()])
        );
    }
}

#[tokio::test]
async fn an_operator_pki_of_root_issuing_ca_and_seal_needs_only_its_root_and_honours_its_crls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The department's PKI as it is built: a root, an issuing CA under it, a seal under that.
    let root = DeptCa::new(d, "/C=CN/O=盘锦市公安局/CN=盘锦市公安局根CA");
    let issuing = root.subordinate(
        "issuing",
        &d.join("issuing"),
        "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章签发CA",
    );
    let mut config = prepared_config().await.unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let code = &registry.department("public-security").unwrap().credit_code;
    let seal = issuing.issue_seal(
        "seal",
        &format!("/C=CN/O=盘锦市公安局/organizationIdentifier={code}/CN=盘锦市公安局公章"),
    );
    let master = d.join("master.key");
    config.pki.master_key_file = master.clone();
    let file = write_config(&config, d).unwrap();
    let base = std::fs::read_to_string(&file).unwrap();
    // Only the root is an anchor; the CRLs of both CAs are configured.
    let root_crl = root.crl("root.crl");
    let issuing_crl = issuing.crl("issuing.crl");
    with_pki(
        &file,
        &base,
        &master,
        &format!(
            "trust_anchors = [\"{}\"]\ncrls = [\"{}\", \"{}\"]\n",
            d.join("ca.pem").display(),
            root_crl.display(),
            issuing_crl.display()
        ),
    );
    ok(&file, &["seal", "init-ca"]);
    let issuing_dir = d.join("issuing");
    ok(
        &file,
        &[
            "seal",
            "import",
            "public-security",
            "--cert",
            issuing_dir.join(&seal.cert).to_str().unwrap(),
            "--key",
            issuing_dir.join(&seal.key_pkcs8).to_str().unwrap(),
            "--chain",
            issuing_dir.join("ca.pem").to_str().unwrap(),
        ],
    );
    let doc = d.join("doc.txt");
    std::fs::write(&doc, "two-level PKI").unwrap();
    ok(
        &file,
        &[
            "seal",
            "sign",
            "--dept",
            "public-security",
            doc.to_str().unwrap(),
        ],
    );
    let verify = || {
        let out = run(
            &file,
            &[
                "seal",
                "verify",
                doc.to_str().unwrap(),
                d.join("doc.txt.sig").to_str().unwrap(),
                "--json",
            ],
        );
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (
            report["overall"].as_str().unwrap().to_owned(),
            codes(&report),
        )
    };
    assert_eq!(verify(), ("VALID".to_owned(), vec![]));

    // Without the root's CRL, whether the issuing CA was revoked is not known (RFC 5280
    // §6.3): INDETERMINATE, naming the issuing CA.
    with_pki(
        &file,
        &base,
        &master,
        &format!(
            "trust_anchors = [\"{}\"]\ncrls = [\"{}\"]\n",
            d.join("ca.pem").display(),
            issuing_crl.display()
        ),
    );
    let out = run(
        &file,
        &[
            "seal",
            "verify",
            doc.to_str().unwrap(),
            d.join("doc.txt.sig").to_str().unwrap(),
            "--json",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["overall"], "INDETERMINATE", "{report:#}");
    assert_eq!(codes(&report), ["REVOCATION_UNKNOWN"], "{report:#}");
    assert!(
        report.to_string().contains("盘锦市公安局印章签发CA"),
        "{report:#}"
    );
    with_pki(
        &file,
        &base,
        &master,
        &format!(
            "trust_anchors = [\"{}\"]\ncrls = [\"{}\", \"{}\"]\n",
            d.join("ca.pem").display(),
            root_crl.display(),
            issuing_crl.display()
        ),
    );

    // The root revokes the issuing CA and publishes its new CRL: the seal's signatures are
    // INVALID, the revocation found on the CA.
    let old_root_crl = d.join("root-old.crl");
    std::fs::copy(&root_crl, &old_root_crl).unwrap();
    // CRL times have whole seconds: the new one is later.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    root.revoke("issuing.pem");
    root.crl("root.crl");
    let (overall, codes) = verify();
    assert_eq!(
        (overall.as_str(), codes),
        ("INVALID", vec!["CERT_REVOKED".to_owned()])
    );
    // The root's older CRL, from before the revocation, configured first: the newest of the
    // root's CRLs decides, the revocation is not hidden.
    with_pki(
        &file,
        &base,
        &master,
        &format!(
            "trust_anchors = [\"{}\"]\ncrls = [\"{}\", \"{}\", \"{}\"]\n",
            d.join("ca.pem").display(),
            old_root_crl.display(),
            root_crl.display(),
            issuing_crl.display()
        ),
    );
    let (overall, codes) = verify();
    assert_eq!(
        (overall.as_str(), codes),
        ("INVALID", vec!["CERT_REVOKED".to_owned()])
    );
}

/// The city root's CRL says whether the issuing CA was revoked: made with the CA, published at
/// `/api/v1/pki/root-crl`, and made where the root key is kept once the key has left the hub.
/// A root CRL past its next update leaves every seal INDETERMINATE, naming the issuing CA,
/// until a new one is made.
#[tokio::test]
async fn the_city_roots_crl_is_published_and_a_stale_one_leaves_seals_indeterminate_until_remade() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = prepared_config().await.unwrap();
    config.pki.master_key_file = dir.path().join("state/master.key");
    config.pki.root_crl_validity = std::time::Duration::from_secs(24 * 3600);
    let file = write_config_with_master_key(&config, dir.path()).unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    ok(&file, &["seal", "init-ca"]);
    ok(&file, &["seal", "issue", "market-regulation"]);
    let doc = dir.path().join("doc.txt");
    std::fs::write(&doc, "关于某事项的批复").unwrap();
    ok(
        &file,
        &[
            "seal",
            "sign",
            "--dept",
            "market-regulation",
            doc.to_str().unwrap(),
        ],
    );
    let sig = dir.path().join("doc.txt.sig");
    let verify = || {
        let out = run(
            &file,
            &[
                "seal",
                "verify",
                doc.to_str().unwrap(),
                sig.to_str().unwrap(),
                "--json",
            ],
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    };
    assert_eq!(verify()["overall"], "VALID");

    let hub = RunningHub::start(config.clone()).await.unwrap();
    let r = reqwest::get(hub.url("/api/v1/pki/root-crl")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/pkix-crl");
    let der = r.bytes().await.unwrap();
    let crl = std::process::Command::new("openssl")
        .args([
            "crl", "-inform", "DER", "-noout", "-issuer", "-nameopt", "utf8",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&der)?;
            child.wait_with_output()
        })
        .unwrap();
    let issuer = String::from_utf8_lossy(&crl.stdout).to_string();
    assert!(issuer.contains("根"), "{issuer}");

    // The root key leaves the hub; a root CRL made two days ago (valid one day) is the newest.
    let key_file = dir.path().join("root.key");
    ok(
        &file,
        &[
            "seal",
            "export-root-key",
            "-o",
            key_file.to_str().unwrap(),
            "--remove",
        ],
    );
    let key_pem = std::fs::read_to_string(&key_file).unwrap();
    SealsService::public(&db, &config.pki)
        .reissue_root_crl(
            chrono::Utc::now() - chrono::Duration::days(2),
            Some(&key_pem),
        )
        .await
        .unwrap();
    let report = verify();
    assert_eq!(report["overall"], "INDETERMINATE", "{report:#}");
    assert_eq!(codes(&report), ["CRL_EXPIRED"], "{report:#}");
    assert!(report.to_string().contains("签发"), "{report:#}");

    // Without the key the hub cannot make one; with the key kept off the hub, it is made.
    let refused = run(&file, &["seal", "root-crl"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("root CA key is not in the hub"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let made: Value = serde_json::from_str(&ok(
        &file,
        &[
            "seal",
            "root-crl",
            "--root-key",
            key_file.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert!(made["crl_number"].as_i64().unwrap() > 1, "{made}");
    assert_eq!(verify()["overall"], "VALID");
}

/// The city's own issuing CA can be revoked (its key compromised, say): `seal revoke-ca`
/// lists it in the root's CRL, revokes its seals and puts a new issuing CA under the same
/// root in its place. What its seals sealed verifies INVALID (CERT_REVOKED), the periodic
/// reissue of the root's CRL keeps listing it, and a seal issued afterwards verifies VALID.
/// Before, the root's CRL never listed anything and was reissued empty on schedule, so a
/// compromised issuing CA could only be dropped with the whole root.
#[tokio::test]
async fn the_city_issuing_ca_is_revoked_and_replaced_under_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = prepared_config().await.unwrap();
    config.pki.master_key_file = dir.path().join("state/master.key");
    let file = write_config_with_master_key(&config, dir.path()).unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let first = ok(&file, &["seal", "init-ca"]);
    let root_pem = bohai_tests::city_root_pem(&first);
    ok(&file, &["seal", "issue", "market-regulation"]);
    let doc = dir.path().join("批复.txt");
    std::fs::write(&doc, "关于同意设立盘锦市某某有限公司的批复\n").unwrap();
    let doc_s = doc.to_str().unwrap();
    ok(
        &file,
        &["seal", "sign", "--dept", "market-regulation", doc_s],
    );
    let old_sig = dir.path().join("old.sig");
    std::fs::rename(dir.path().join("批复.txt.sig"), &old_sig).unwrap();
    let old_s = old_sig.to_str().unwrap();
    let report: Value =
        serde_json::from_str(&ok(&file, &["seal", "verify", doc_s, old_s, "--json"])).unwrap();
    assert_eq!(report["overall"], "VALID", "{report:#}");

    let done: Value = serde_json::from_str(&ok(
        &file,
        &["seal", "revoke-ca", "--reason", "key_compromise", "--json"],
    ))
    .unwrap();
    assert_eq!(done["seals_revoked"], 1, "{done}");
    let revoked = run(&file, &["seal", "verify", doc_s, old_s, "--json"]);
    let report: Value = serde_json::from_slice(&revoked.stdout).unwrap();
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert!(
        codes(&report).contains(&"CERT_REVOKED".to_owned()),
        "{report:#}"
    );
    assert_eq!(revoked.status.code(), Some(2));

    // The root's CRL (as the API serves it) names the old CA; the reissue on schedule keeps it.
    ok(&file, &["seal", "root-crl"]);
    let (root_crl,): (Vec<u8>,) =
        sqlx::query_as("SELECT der FROM crls WHERE issuer = 'root' ORDER BY number DESC LIMIT 1")
            .fetch_one(&db)
            .await
            .unwrap();
    let serial = done["revoked_serial"].as_str().unwrap().to_uppercase();
    let crl_path = dir.path().join("root.crl");
    std::fs::write(&crl_path, &root_crl).unwrap();
    let text = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).replace(':', "");
    assert!(
        text.contains(&serial),
        "{serial} not in the root's CRL:\n{text}"
    );

    // The new issuing CA is under the same root, and its seals verify.
    let new_issuing = done["issuing_pem"].as_str().unwrap();
    assert!(!first.contains(new_issuing.trim()));
    let root_file = dir.path().join("root.pem");
    let issuing_file = dir.path().join("issuing.pem");
    std::fs::write(&root_file, &root_pem).unwrap();
    std::fs::write(&issuing_file, new_issuing).unwrap();
    let chained = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&root_file)
        .arg(&issuing_file)
        .output()
        .unwrap();
    assert!(
        chained.status.success(),
        "{}",
        String::from_utf8_lossy(&chained.stderr)
    );
    ok(&file, &["seal", "issue", "market-regulation"]);
    ok(
        &file,
        &["seal", "sign", "--dept", "market-regulation", doc_s],
    );
    let new_sig = dir.path().join("批复.txt.sig");
    let report: Value = serde_json::from_str(&ok(
        &file,
        &["seal", "verify", doc_s, new_sig.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    assert_eq!(report["overall"], "VALID", "{report:#}");
}

/// After `seal revoke-ca`, a seal record made by the revoked issuing CA says nothing: whoever
/// holds that CA's key could make one binding any certificate to any seal. A signature of an
/// imported seal (its certificate from the department's own CA, its record from the city's)
/// made before is INVALID; the seal itself stays usable, its record made again by the new
/// CA, and what it signs afterwards is VALID. Before, the record's maker was never checked
/// against its issuer's CRL, so the old signatures stayed VALID.
#[tokio::test]
async fn records_made_by_a_revoked_issuing_ca_say_nothing_and_imported_seals_get_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut config = prepared_config().await.unwrap();
    let registry = bohai_hub::registry::load(&config.registry).unwrap();
    let code = &registry.department("public-security").unwrap().credit_code;
    let ca = DeptCa::new(d, "/C=CN/O=盘锦市公安局/CN=盘锦市公安局印章CA");
    let seal = ca.issue_seal(
        "seal",
        &format!("/C=CN/O=盘锦市公安局/organizationIdentifier={code}/CN=盘锦市公安局公章"),
    );
    let master = d.join("master.key");
    config.pki.master_key_file = master.clone();
    let file = write_config(&config, d).unwrap();
    let base = std::fs::read_to_string(&file).unwrap();
    let crl = ca.crl("dept.crl");
    let pki = format!(
        "trust_anchors = [\"{}\"]\ncrls = [\"{}\"]\n",
        d.join("ca.pem").display(),
        crl.display()
    );
    with_pki(&file, &base, &master, &pki);
    ok(&file, &["seal", "init-ca"]);
    let (cert, key) = (d.join(&seal.cert), d.join(&seal.key_pkcs8));
    ok(
        &file,
        &[
            "seal",
            "import",
            "public-security",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let doc = d.join("doc.txt");
    std::fs::write(&doc, "imported seal").unwrap();
    let doc_s = doc.to_str().unwrap();
    let sign = |to: &str| {
        ok(&file, &["seal", "sign", "--dept", "public-security", doc_s]);
        let sig = d.join(to);
        std::fs::rename(d.join("doc.txt.sig"), &sig).unwrap();
        sig
    };
    let verify = |sig: &Path| -> Value {
        let out = run(
            &file,
            &["seal", "verify", doc_s, sig.to_str().unwrap(), "--json"],
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = sign("before.sig");
    assert_eq!(verify(&before)["overall"], "VALID");

    let done: Value = serde_json::from_str(&ok(
        &file,
        &["seal", "revoke-ca", "--reason", "key_compromise", "--json"],
    ))
    .unwrap();
    assert_eq!(done["records_remade"], 1, "{done}");
    let report = verify(&before);
    assert_eq!(report["overall"], "INVALID", "{report:#}");
    assert!(
        codes(&report).contains(&"CERT_REVOKED".to_owned()),
        "{report:#}"
    );
    let after = sign("after.sig");
    let report = verify(&after);
    assert_eq!(report["overall"], "VALID", "{report:#}");
}
