//! The audit log as an attacker inside the hub would try it: its own database role deleting,
//! rewriting or cutting the chain (refused by the separate owner role, or found by a signed
//! checkpoint), privileged acts left out of the log, and a department approving its own
//! access request. See docs/security.md, "The audit log".

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use bohai_hub::audit::Entry;
use bohai_tests::prepared_config;

/// The SQLSTATE of "insufficient privilege".
const PERMISSION_DENIED: &str = "42501";

async fn sqlstate(db: &sqlx::PgPool, sql: &'static str) -> Option<String> {
    match sqlx::query(sql).execute(db).await {
        Ok(_) => None,
        Err(e) => Some(
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
                .unwrap_or_else(|| format!("not a database error: {e}")),
        ),
    }
}

#[tokio::test]
async fn the_hubs_runtime_role_cannot_alter_the_audit_log() {
    let config = prepared_config().await.unwrap();
    // The role the hub serves with: what an attacker holding the hub's process has.
    let db = bohai_hub::database::pool(&config.database).unwrap();
    Entry::new("civil-affairs", "read")
        .append_to(&db)
        .await
        .unwrap();
    for sql in [
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET actor = 'someone-else'",
        "TRUNCATE audit_log",
        "DROP TABLE audit_log",
        "DELETE FROM audit_checkpoints",
    ] {
        assert_eq!(
            sqlstate(&db, sql).await.as_deref(),
            Some(PERMISSION_DENIED),
            "the hub's runtime role was not refused `{sql}`"
        );
    }
    // And what it may do still works: read and append.
    Entry::new("civil-affairs", "read")
        .append_to(&db)
        .await
        .unwrap();
    let v = bohai_hub::audit::verify(&db).await.unwrap();
    assert!(v.intact);
    assert_eq!(v.entries, 2);
}

/// A hub with a city CA and the status authority's seal, and `n` audit entries.
struct Signed {
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
    root: std::path::PathBuf,
    config: bohai_hub::config::Config,
    db: sqlx::PgPool,
    /// Entries before the `n` made for the test (the CA's and the seal's).
    base: i64,
}

impl Signed {
    async fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = prepared_config().await.unwrap();
        config.pki.master_key_file = dir.path().join("state/master.key");
        let file = bohai_tests::write_config_with_master_key(&config, dir.path()).unwrap();
        let pems = bohai_tests::bohai_ok(&file, &["seal", "init-ca"]);
        let root = dir.path().join("root.pem");
        std::fs::write(&root, bohai_tests::city_root_pem(&pems)).unwrap();
        bohai_tests::bohai_ok(&file, &["seal", "issue", "data-administration"]);
        let db = bohai_hub::database::pool(&config.database).unwrap();
        let base = bohai_hub::audit::checkpoint::tail(&db).await.unwrap().0;
        for i in 0..n {
            Entry::new("civil-affairs", "read")
                .dataset("resident-registrations")
                .keys(vec![format!("key-{i}")])
                .append_to(&db)
                .await
                .unwrap();
        }
        Self {
            dir,
            file,
            root,
            config,
            db,
            base,
        }
    }

    /// `bohai audit checkpoint`: the checkpoint file and what it says.
    fn checkpoint(&self) -> (std::path::PathBuf, serde_json::Value) {
        let path = self
            .dir
            .path()
            .join(format!("{}.jws", bohai_tests::unique("cp-")));
        let out = bohai_tests::bohai_ok(
            &self.file,
            &[
                "audit",
                "checkpoint",
                "--json",
                "--out",
                path.to_str().unwrap(),
            ],
        );
        (path, serde_json::from_str(&out).unwrap())
    }

    /// `bohai audit verify [--against FILE --root ROOT] --json`: success and the report.
    fn verify(&self, against: Option<&std::path::Path>) -> (bool, serde_json::Value) {
        let mut args = vec!["audit", "verify", "--json"];
        if let Some(f) = against {
            args.extend(["--against", f.to_str().unwrap()]);
            args.extend(["--root", self.root.to_str().unwrap()]);
        }
        let out = bohai_tests::bohai_run(&self.file, &args);
        (
            out.status.success(),
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("no JSON: {}", String::from_utf8_lossy(&out.stderr))),
        )
    }

    /// `bohai audit verify --against FILE --root ROOT`, which must fail: what it said.
    fn refused(&self, against: &std::path::Path) -> String {
        self.refused_with(against, &["--root", self.root.to_str().unwrap()])
    }

    /// `bohai audit verify --against FILE` with `options`, which must fail: what it said.
    fn refused_with(&self, against: &std::path::Path, options: &[&str]) -> String {
        let mut args = vec!["audit", "verify", "--against", against.to_str().unwrap()];
        args.extend(options);
        let out = bohai_tests::bohai_run(&self.file, &args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "accepted: {said}");
        said
    }

    /// The database administrator's hand (or a hub with one role): the owner role, triggers
    /// off, runs `sql`, triggers back on.
    async fn as_owner(&self, sql: &[String]) {
        let owner = bohai_tests::owner_pool(&self.config).await.unwrap();
        let mut tx = owner.begin().await.unwrap();
        sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
            .execute(&mut *tx)
            .await
            .unwrap();
        for s in sql {
            sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER USER")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_truncation_after_a_checkpoint_is_detected() {
    let hub = Signed::new(5).await;
    let (cp, made) = hub.checkpoint();
    let signed = hub.base + 5;
    assert_eq!(made["seq"], signed, "{made}");
    let topic = bohai_hub::audit::checkpoint::topic(&hub.config.kafka);
    assert_eq!(made["published_to"], topic.as_str(), "{made}");
    // The checkpoint is on the topic, where the database's owner cannot reach it.
    let published = first_record(&hub.config.kafka, &topic).await;
    assert_eq!(published.trim(), made["token"].as_str().unwrap());
    let (ok, v) = hub.verify(Some(&cp));
    assert!(ok, "{v}");
    assert_eq!(v["checkpoint"]["seq"], signed);

    // The last entries go. The chain that is left is still a valid chain...
    hub.as_owner(&[format!(
        "DELETE FROM audit_log WHERE seq > {}",
        hub.base + 3
    )])
    .await;
    let (ok, v) = hub.verify(None);
    assert!(ok, "without a checkpoint a cut chain looks whole: {v}");
    // ...but not the chain the checkpoint signed.
    let (ok, v) = hub.verify(Some(&cp));
    assert!(!ok, "{v}");
    assert_eq!(v["intact"], false);
    assert_eq!(v["first_broken"], hub.base + 4, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("deleted"), "{v}");
}

/// Issue 15, item 7 (review of the revoke-ca slice): a checkpoint was checked against the
/// authority's certificate at the time it claims, without its revocation. Whoever kept the
/// status authority's seal key after its revocation signs a checkpoint over a rewritten chain
/// claiming a later time, and `audit verify --against` accepted it; a checkpoint claiming a
/// time far ahead of the verifier's clock was accepted too.
#[tokio::test]
async fn a_checkpoint_signed_after_its_seal_was_revoked_or_claiming_the_future_is_refused() {
    let hub = Signed::new(2).await;
    let registry = bohai_hub::registry::load(&hub.config.registry).unwrap();
    let made_at = |at: chrono::DateTime<chrono::Utc>| {
        let (db, config, registry) = (&hub.db, &hub.config, &registry);
        async move {
            bohai_hub::audit::checkpoint::make(db, config, registry, at, None)
                .await
                .unwrap()
        }
    };
    let write = |name: &str, token: &str| {
        let path = hub.dir.path().join(name);
        std::fs::write(&path, token).unwrap();
        path
    };
    // A day ahead of every clock: refused by its time alone.
    let ahead = made_at(chrono::Utc::now() + chrono::Duration::days(1)).await;
    let ahead = write("ahead.jws", &ahead.token);
    let refused = hub.refused(&ahead);
    assert!(refused.contains("ahead of this clock"), "{refused}");

    // Signed with the key now, claiming a minute on (within the clock skew allowed); then the
    // seal is revoked: its signatures claiming a time after that are the key holder's, not
    // the authority's.
    let later = made_at(chrono::Utc::now() + chrono::Duration::seconds(60)).await;
    let later = write("later.jws", &later.token);
    let (ok, v) = hub.verify(Some(&later));
    assert!(ok, "before the revocation it verifies: {v}");
    bohai_tests::revoke_seal_of(&hub.file, "data-administration");
    let refused = hub.refused(&later);
    assert!(refused.contains("revoked"), "{refused}");
}

/// Whoever owns the database can rewrite the log, and can as well delete the CRL that lists
/// the authority's revoked seal, leaving the one before it (still current, listing nothing):
/// the key's holder then signs checkpoints the database vouches for. An auditor who keeps the
/// city's CRL as published (`GET /api/v1/pki/crl`) gives it with `--crl`, and the database's
/// CRLs are not read.
#[tokio::test]
async fn an_auditor_with_the_published_crl_does_not_take_the_databases_word_for_revocation() {
    let hub = Signed::new(2).await;
    let registry = bohai_hub::registry::load(&hub.config.registry).unwrap();
    let later = bohai_hub::audit::checkpoint::make(
        &hub.db,
        &hub.config,
        &registry,
        chrono::Utc::now() + chrono::Duration::seconds(60),
        None,
    )
    .await
    .unwrap();
    let later_file = hub.dir.path().join("later.jws");
    std::fs::write(&later_file, &later.token).unwrap();
    bohai_tests::revoke_seal_of(&hub.file, "data-administration");
    let seals = bohai_hub::seals::SealsService::public(&hub.db, &hub.config.pki);
    let published = seals.latest_crl().await.unwrap().unwrap();
    let crl_file = hub.dir.path().join("city.crl");
    std::fs::write(&crl_file, &published.der).unwrap();
    hub.as_owner(&[format!(
        "DELETE FROM crls WHERE issuer = 'issuing' AND number = {}",
        published.number
    )])
    .await;
    let (intact, v) = hub.verify(Some(&later_file));
    assert!(intact, "the database's CRLs hide the revocation: {v}");
    let root = hub.root.to_str().unwrap();
    let said = hub.refused_with(
        &later_file,
        &["--root", root, "--crl", crl_file.to_str().unwrap()],
    );
    assert!(said.contains("revoked"), "{said}");
    // A CRL that is not one is an error, not an empty list.
    let said = hub.refused_with(&later_file, &["--crl", root]);
    assert!(said.contains("not a CRL"), "{said}");
}

#[tokio::test]
async fn a_rewritten_chain_is_detected_by_a_checkpoint() {
    use bohai_hub::audit::chain::{entry_hash, Content, GENESIS};
    let hub = Signed::new(4).await;
    let (cp, _) = hub.checkpoint();
    // One read entry loses its key, and every hash from it on is recomputed: a consistent
    // chain.
    let changed = hub.base + 2;
    let rows: Vec<StoredRow> = sqlx::query_as(
        "SELECT seq, at, actor, person, action, dataset, subject, keys, count, purpose, detail
         FROM audit_log ORDER BY seq",
    )
    .fetch_all(&hub.db)
    .await
    .unwrap();
    let mut prev = GENESIS;
    let mut sql = Vec::new();
    for (seq, at, actor, person, action, dataset, subject, mut keys, mut count, purpose, detail) in
        rows
    {
        if seq == changed {
            keys.clear();
            count = 0;
        }
        let content = Content {
            at,
            actor,
            person,
            action,
            dataset,
            subject,
            keys,
            count,
            purpose,
            detail,
        };
        let hash = entry_hash(&prev, seq, &content);
        let keys_sql = if content.keys.is_empty() {
            "ARRAY[]::text[]".to_owned()
        } else {
            format!("ARRAY['{}']", content.keys.join("','"))
        };
        sql.push(format!(
            "UPDATE audit_log SET keys = {keys_sql}, count = {}, prev_hash = '\\x{}', hash = '\\x{}' WHERE seq = {seq}",
            content.count,
            hex_of(&prev),
            hex_of(&hash)
        ));
        prev = hash;
    }
    hub.as_owner(&sql).await;
    let (ok, v) = hub.verify(None);
    assert!(ok, "a recomputed chain verifies on its own: {v}");
    let (ok, v) = hub.verify(Some(&cp));
    assert!(!ok, "{v}");
    assert_eq!(v["first_broken"], hub.base + 4, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("rewritten"), "{v}");

    // A checkpoint with a changed payload does not verify.
    let token = std::fs::read_to_string(&cp).unwrap();
    let parts: Vec<&str> = token.trim().split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["hash"] = serde_json::Value::String(hex_of(&prev));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let forged_file = hub.dir.path().join("forged.jws");
    std::fs::write(&forged_file, forged).unwrap();
    let out = bohai_tests::bohai_run(
        &hub.file,
        &[
            "audit",
            "verify",
            "--against",
            forged_file.to_str().unwrap(),
            "--root",
            hub.root.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// seq, at, actor, person, action, dataset, subject, keys, count, purpose, detail of an entry.
type StoredRow = (
    i64,
    chrono::DateTime<chrono::Utc>,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
    i64,
    Option<String>,
    String,
);

fn hex_of(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first record's value on `topic`.
async fn first_record(kafka: &bohai_hub::config::KafkaConfig, topic: &str) -> String {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", bohai_tests::unique("cp-check-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let m = tokio::time::timeout(std::time::Duration::from_secs(30), consumer.recv())
        .await
        .expect("a checkpoint on the topic within 30 s")
        .unwrap();
    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn an_admin_cannot_approve_its_own_departments_request_alone() {
    use bohai_hub::auth::{self, Scope};
    let config = prepared_config().await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = bohai_tests::RunningHub::start(config).await.unwrap();
    let client = reqwest::Client::new();
    // Two admins of civil-affairs, and the one who asks.
    let admin = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read, Scope::Admin], None)
        .await
        .unwrap()
        .secret;
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let (status, sub) = post(
        &client,
        &hub.url("/api/v1/subscriptions"),
        &admin,
        &serde_json::json!({"dataset": "business-registrations", "fields": ["credit_code"],
            "purpose": "minimum-living-allowance checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    let approve = hub.url(&format!("/api/v1/subscriptions/{id}/approve"));
    // The requesting department's admin token approves its own request: refused.
    let (status, body) = post(&client, &approve, &admin, &serde_json::json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "self_approval", "{body}");

    // With persons named: the one who asked never approves; two other admins of the
    // department do, one after the other.
    let token = |person: &'static str| {
        let db = db.clone();
        async move {
            auth::create_token_for(
                &db,
                "civil-affairs",
                &[Scope::Read, Scope::Admin],
                None,
                Some(person),
            )
            .await
            .unwrap()
            .secret
        }
    };
    let (asker, first, second) = (
        token("zhang.san").await,
        token("li.wei").await,
        token("wang.fang").await,
    );
    let (status, sub) = post(
        &client,
        &hub.url("/api/v1/subscriptions"),
        &asker,
        &serde_json::json!({"dataset": "business-registrations", "fields": ["credit_code"],
            "purpose": "minimum-living-allowance checks", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["requested_by"], "zhang.san");
    let id = sub["id"].as_str().unwrap().to_owned();
    let approve = hub.url(&format!("/api/v1/subscriptions/{id}/approve"));
    let (status, body) = post(&client, &approve, &asker, &serde_json::json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("self_approval")),
        "{body}"
    );
    let (status, body) = post(&client, &approve, &first, &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending", "one admin is not enough: {body}");
    assert_eq!(body["first_approved_by"], "civil-affairs/li.wei");
    let (status, body) = post(&client, &approve, &first, &serde_json::json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("self_approval")),
        "{body}"
    );
    let (status, body) = post(&client, &approve, &second, &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved", "{body}");

    // The log names each person besides the department.
    let people: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT action, actor, person FROM audit_log WHERE subject = $1 ORDER BY seq",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .unwrap();
    let expect = |a: &str, p: &str| (a.to_owned(), "civil-affairs".to_owned(), Some(p.to_owned()));
    assert_eq!(
        people,
        vec![
            expect("subscription.request", "zhang.san"),
            expect("subscription.approve.first", "li.wei"),
            expect("subscription.approve", "wang.fang"),
        ]
    );
    assert!(bohai_hub::audit::verify(&db).await.unwrap().intact);
}

/// `(action, actor, person, subject)` of every entry whose action starts with `prefix`.
async fn entries(
    db: &sqlx::PgPool,
    prefix: &str,
) -> Vec<(String, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT action, actor, person, subject FROM audit_log
         WHERE starts_with(action, $1) ORDER BY seq",
    )
    .bind(prefix)
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn seal_ca_and_licence_acts_are_audited_with_the_person() {
    use bohai_hub::auth::{self, Scope};
    use bohai_tests::bohai_ok as ok;
    let hub = Signed::new(0).await;
    let file = &hub.file;
    // The CA was made and a seal issued by `Signed::new` (as $USER): both on the log.
    let ca = entries(&hub.db, "ca.").await;
    assert!(
        ca.iter().any(|e| e.0 == "ca.init" && e.1 == "operator"),
        "{ca:?}"
    );
    let out = ok(
        file,
        &[
            "--actor",
            "chen.jie",
            "seal",
            "issue",
            "traffic-police",
            "--json",
        ],
    );
    let seal: serde_json::Value = serde_json::from_str(&out).unwrap();
    let seal_id = seal["seal_id"].as_str().unwrap().to_owned();
    let issued = entries(&hub.db, "seal.issue").await;
    assert!(
        issued.contains(&(
            "seal.issue".to_owned(),
            "operator".to_owned(),
            Some("chen.jie".to_owned()),
            Some(seal_id.clone())
        )),
        "{issued:?}"
    );

    // A department signs through the API: its person is on the entry.
    let signer = auth::create_token_for(
        &hub.db,
        "traffic-police",
        &[Scope::Issue, Scope::Read],
        None,
        Some("liu.yang"),
    )
    .await
    .unwrap()
    .secret;
    let running = bohai_tests::RunningHub::start(hub.config.clone())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        &running.url(&format!("/api/v1/seals/{seal_id}/sign")),
        &signer,
        &serde_json::json!({"sha256": "ab".repeat(32)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let signed = entries(&hub.db, "seal.sign").await;
    assert_eq!(
        signed,
        vec![(
            "seal.sign".to_owned(),
            "traffic-police".to_owned(),
            Some("liu.yang".to_owned()),
            Some(seal_id.clone())
        )]
    );

    // A licence read names the reader.
    let subject = std::fs::read_to_string(
        bohai_schemas::registry::builtin_dir()
            .join("licences/driving-licence/examples/valid.jsonl"),
    )
    .unwrap();
    let holder = hub.dir.path().join("holder.json");
    std::fs::write(&holder, subject.lines().next().unwrap()).unwrap();
    let out = hub.dir.path().join("dl.jws");
    ok(
        file,
        &[
            "--actor",
            "chen.jie",
            "licence",
            "issue",
            "--type",
            "driving-licence",
            "--holder",
            holder.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let number: String = sqlx::query_scalar("SELECT number FROM licences LIMIT 1")
        .fetch_one(&hub.db)
        .await
        .unwrap();
    let resp = client
        .get(running.url(&format!("/api/v1/licences/{number}")))
        .bearer_auth(&signer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reads = entries(&hub.db, "licence_read").await;
    assert_eq!(
        reads,
        vec![(
            "licence_read".to_owned(),
            "traffic-police".to_owned(),
            Some("liu.yang".to_owned()),
            Some(number.clone())
        )]
    );
    // Licence actions name the person, at the command line and through the API.
    let (status, body) = post(
        &client,
        &running.url(&format!("/api/v1/licences/{number}/suspend")),
        &signer,
        &serde_json::json!({"reason": "暂扣：核查中"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let acts: Vec<(String, Option<String>)> = entries(&hub.db, "licence.")
        .await
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        acts,
        vec![
            ("licence.issued".to_owned(), Some("chen.jie".to_owned())),
            ("licence.suspended".to_owned(), Some("liu.yang".to_owned())),
        ]
    );

    // Revoking the seal is on the log, with the person.
    ok(
        file,
        &[
            "--actor",
            "chen.jie",
            "seal",
            "revoke",
            &seal_id,
            "--reason",
            "key_compromise",
        ],
    );
    let revoked = entries(&hub.db, "seal.revoke").await;
    assert_eq!(
        revoked,
        vec![(
            "seal.revoke".to_owned(),
            "operator".to_owned(),
            Some("chen.jie".to_owned()),
            Some(seal_id)
        )]
    );
    let (ok_, v) = hub.verify(None);
    assert!(ok_, "{v}");
}
