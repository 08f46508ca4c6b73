//! The credit profile against a running hub and the real PostgreSQL: every entry about a
//! subject across the credit datasets and administrative penalties, published or not by its
//! dates; the public query (信用盘锦) that answers only for organisations and individual
//! businesses and cannot be used to test whether a person is listed; masking for a
//! department that does not own the entries; every read audited without raw identity numbers.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use bohai_hub::auth::{self, Scope};
use bohai_tests::{bohai_ok, get_json_as as get, prepared_config, write_config, RunningHub};
use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

/// A listed company.
const COMPANY: &str = "91211103MA0Q9F4B6R";
/// An individual business with a penalty that names its operator's identity number.
const SHOP: &str = "92211104MA0UQ7C36C";
/// The shop operator's identity number.
const OPERATOR_ID: &str = "211121196304200357";
/// A natural person on the black list.
const PERSON: &str = "211104198307211556";
/// A valid identity number no entry names.
const NOBODY: &str = "211102197001011239";
/// A valid credit code no entry names.
const UNKNOWN: &str = "91211102MA0L4T7X1X";

fn today() -> NaiveDate {
    (chrono::Utc::now() + Duration::hours(8)).date_naive()
}

fn day(offset: i64) -> String {
    (today() + Duration::days(offset)).to_string()
}

/// A black-list entry of the company, published now.
fn company_black() -> Value {
    json!({"entry_number": "PJ-BL-2024-000073", "category": "市场监督管理严重违法失信名单",
        "subject_type": "法人及非法人组织", "subject_name": "盘锦华康食品有限公司",
        "subject_credit_code": COMPANY, "legal_rep_name": "赵德胜",
        "legal_rep_id_number": "21110219690827151X",
        "reason": "生产经营不符合食品安全标准的食品，情节严重",
        "legal_basis": "《市场监督管理严重违法失信名单管理办法》",
        "listing_department": "market-regulation",
        "listing_department_credit_code": "112111000652075553",
        "list_date": day(-30), "end_date": day(365), "updated_at": "2024-03-19T09:40:21+08:00"})
}

/// A red-list entry of the company whose term ended yesterday.
fn company_red_ended() -> Value {
    json!({"entry_number": "PJ-RL-2023-000012", "category": "纳税信用A级纳税人",
        "subject_type": "法人及非法人组织", "subject_name": "盘锦华康食品有限公司",
        "subject_credit_code": COMPANY, "reason": "纳税信用评价为A级",
        "legal_basis": "《纳税信用管理办法（试行）》", "listing_department": "taxation",
        "listing_department_credit_code": "112111000873375612",
        "list_date": day(-400), "end_date": day(-1), "updated_at": "2023-04-01T10:00:00+08:00"})
}

/// A commitment of the company that takes effect in ten days.
fn company_commitment_later() -> Value {
    json!({"entry_number": "PJ-CN-2024-000321", "commitment_type": "审批替代型",
        "subject_type": "法人及非法人组织", "subject_name": "盘锦华康食品有限公司",
        "subject_credit_code": COMPANY, "reason": "食品经营许可告知承诺",
        "legal_basis": "《食品经营许可和备案管理办法》", "listing_department": "market-regulation",
        "listing_department_credit_code": "112111000652075553",
        "list_date": day(10), "updated_at": "2024-05-01T10:00:00+08:00"})
}

/// A penalty of the company, decided a month ago.
fn company_penalty() -> Value {
    json!({"decision_number": "盘兴市监处罚〔2024〕58号", "party_name": "盘锦华康食品有限公司",
        "party_type": "法人及非法人组织", "party_credit_code": COMPANY, "legal_rep_name": "赵德胜",
        "violation": "经营超过保质期的食品", "legal_basis": "《中华人民共和国食品安全法》第一百二十四条",
        "penalty_types": ["罚款"], "fine_yuan": 50000.0, "decided_on": day(-31),
        "authority_name": "盘锦市兴隆台区市场监督管理局", "authority_credit_code": "11211103MB1H7N2R22",
        "updated_at": "2024-04-30T09:00:00+08:00"})
}

/// A penalty of the individual business, naming its operator's identity number.
fn shop_penalty() -> Value {
    json!({"decision_number": "盘洼市监处罚〔2024〕21号", "party_name": "盘锦市大洼区田庄台镇徐记河蟹经销店",
        "party_type": "个体工商户", "party_credit_code": SHOP, "legal_rep_name": "徐长海",
        "party_id_number": OPERATOR_ID, "violation": "经营者未按照规定明码标价",
        "legal_basis": "《中华人民共和国价格法》第四十二条", "penalty_types": ["罚款"],
        "fine_yuan": 800.0, "decided_on": day(-20), "authority_name": "盘锦市大洼区市场监督管理局",
        "authority_credit_code": "11211104MB1J3C5P54", "updated_at": "2024-05-17T15:30:00+08:00"})
}

/// A black-list entry of a natural person, published now.
fn person_black() -> Value {
    json!({"entry_number": "PJ-BL-2024-000266", "category": "拖欠农民工工资失信联合惩戒对象",
        "subject_type": "自然人", "person_name": "孙志强", "subject_id_number": PERSON,
        "reason": "拖欠15名农民工工资21.7万元，经责令限期支付逾期未支付",
        "legal_basis": "《拖欠农民工工资失信联合惩戒对象名单管理暂行办法》",
        "listing_department": "human-resources-social-security",
        "listing_department_credit_code": "11211100043666419N",
        "list_date": day(-60), "end_date": day(700), "updated_at": "2024-07-16T16:45:30+08:00"})
}

/// Puts the entries into the repository as the sink would (the sink has its own tests),
/// each checked against its dataset's schema first.
async fn store(db: &sqlx::PgPool) {
    let registry = bohai_schemas::Registry::load_builtin().unwrap();
    let entries = [
        ("credit-black-list", company_black()),
        ("credit-red-list", company_red_ended()),
        ("credit-commitments", company_commitment_later()),
        ("administrative-penalties", company_penalty()),
        ("administrative-penalties", shop_penalty()),
        ("credit-black-list", person_black()),
    ];
    for (dataset, record) in entries {
        let ds = registry.dataset(dataset).unwrap();
        let text = record.to_string();
        assert!(
            ds.validator.validate(&record).is_empty(),
            "{dataset}: {text} is not valid"
        );
        let pk = match dataset {
            "administrative-penalties" => {
                json!([record["authority_credit_code"], record["decision_number"]]).to_string()
            }
            _ => record["entry_number"].as_str().unwrap().to_owned(),
        };
        sqlx::query(
            "INSERT INTO repository_records (dataset, pk, data, version, source)
             VALUES ($1, $2, $3, 1, 'test')",
        )
        .bind(dataset)
        .bind(pk)
        .bind(&record)
        .execute(db)
        .await
        .unwrap();
    }
}

/// A hub on a fresh database that holds the entries, and what a test reaches it with.
struct Started {
    _dir: tempfile::TempDir,
    config_file: std::path::PathBuf,
    db: sqlx::PgPool,
    hub: RunningHub,
    client: reqwest::Client,
}

async fn started() -> Started {
    let config = prepared_config().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(&config, dir.path()).unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    store(&db).await;
    Started {
        _dir: dir,
        config_file,
        hub: RunningHub::start(config).await.unwrap(),
        db,
        client: reqwest::Client::new(),
    }
}

/// A token of `department` with `scope`.
async fn token(db: &sqlx::PgPool, department: &str, scope: Scope) -> String {
    auth::create_scoped_token(db, department, &[scope], None)
        .await
        .unwrap()
        .secret
}

/// Requests (and, for an unconditional dataset, so gets) `fields` of `dataset`.
async fn subscribe(
    client: &reqwest::Client,
    hub: &RunningHub,
    token: &str,
    dataset: &str,
    fields: &[&str],
) {
    let until = chrono::Utc::now() + Duration::days(30);
    let r = client
        .post(hub.url("/api/v1/subscriptions"))
        .bearer_auth(token)
        .json(&json!({"dataset": dataset, "fields": fields, "purpose": "joint discipline at the counter", "until": until}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "approved", "{body}");
}

/// The entry of `dataset` in a profile.
fn entry<'p>(profile: &'p Value, dataset: &str) -> &'p Value {
    let entries = profile["entries"].as_array().unwrap();
    let mut of: Vec<&Value> = entries.iter().filter(|e| e["dataset"] == dataset).collect();
    assert_eq!(of.len(), 1, "{dataset} in {profile}");
    of.remove(0)
}

#[tokio::test]
async fn a_listed_company_has_its_profile_and_the_public_sees_only_what_is_published() {
    let Started {
        _dir,
        config_file,
        db,
        hub,
        client,
    } = started().await;
    let owner = token(&db, "development-reform", Scope::Read).await;

    // Without a grant to the penalties of market-regulation, they are withheld, said so.
    let url = hub.url(&format!("/api/v1/credit/{COMPANY}"));
    let (status, profile) = get(&client, &url, Some(&owner)).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["subject"], COMPANY);
    assert_eq!(profile["entries"].as_array().unwrap().len(), 3, "{profile}");
    assert_eq!(profile["withheld"], json!(["administrative-penalties"]));

    subscribe(
        &client,
        &hub,
        &owner,
        "administrative-penalties",
        &["decision_number", "party_name", "violation", "decided_on"],
    )
    .await;
    let (status, profile) = get(&client, &url, Some(&owner)).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["entries"].as_array().unwrap().len(), 4, "{profile}");
    assert_eq!(profile["withheld"], json!([]));

    // Publication follows the dates: from the list date, until the end date has passed.
    let black = entry(&profile, "credit-black-list");
    assert_eq!(black["department"], "market-regulation");
    assert_eq!(black["list_date"], day(-30));
    assert_eq!(black["end_date"], day(365));
    assert_eq!(black["published"], true);
    assert_eq!(black["record"], company_black());
    let red = entry(&profile, "credit-red-list");
    assert_eq!(red["department"], "taxation");
    assert_eq!(red["end_date"], day(-1));
    assert_eq!(red["published"], false);
    let later = entry(&profile, "credit-commitments");
    assert_eq!(later["list_date"], day(10));
    assert!(later["end_date"].is_null());
    assert_eq!(later["published"], false);
    let penalty = entry(&profile, "administrative-penalties");
    assert_eq!(penalty["department"], "market-regulation");
    assert_eq!(penalty["list_date"], day(-31));
    assert_eq!(penalty["published"], true);
    // Only the granted fields of another department's entry.
    let mut fields: Vec<&String> = penalty["record"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["decided_on", "decision_number", "party_name", "violation"]
    );

    // The CLI says the same.
    let out = bohai_ok(&config_file, &["credit", "show", COMPANY, "--json"]);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["entries"].as_array().unwrap().len(), 4, "{shown}");
    let text = bohai_ok(&config_file, &["credit", "show", COMPANY]);
    assert!(text.contains("PJ-BL-2024-000073"), "{text}");
    assert!(text.contains("published"), "{text}");

    // The public sees the published entries only, without personal information.
    let (status, public) = get(
        &client,
        &hub.url(&format!("/api/v1/public/credit/{COMPANY}")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{public}");
    let mut datasets: Vec<&str> = public["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dataset"].as_str().unwrap())
        .collect();
    datasets.sort_unstable();
    assert_eq!(datasets, ["administrative-penalties", "credit-black-list"]);
    let black = entry(&public, "credit-black-list");
    assert_eq!(black["published"], true);
    assert_eq!(black["record"]["subject_name"], "盘锦华康食品有限公司");
    assert!(black["record"].get("legal_rep_id_number").is_none());
    assert!(black["record"].get("legal_rep_name").is_none());
    let text = public.to_string();
    assert!(!text.contains("PJ-RL-2023-000012") && !text.contains("PJ-CN-2024-000321"));

    // An individual business: its operator's identity number is never shown.
    let (status, shop) = get(
        &client,
        &hub.url(&format!("/api/v1/public/credit/{SHOP}")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{shop}");
    assert_eq!(shop["entries"].as_array().unwrap().len(), 1);
    assert!(!shop.to_string().contains(OPERATOR_ID), "{shop}");
}

#[tokio::test]
async fn the_public_query_answers_persons_as_it_answers_unknown_subjects() {
    let Started {
        db, hub, client, ..
    } = started().await;
    let public = |subject: &str| hub.url(&format!("/api/v1/public/credit/{subject}"));
    let (status, unknown) = get(&client, &public(UNKNOWN), None).await;
    assert_eq!(status, 404, "{unknown}");
    assert_eq!(unknown["code"], "not_found");
    // A listed person, a person no entry names, an individual business's operator: the same.
    for subject in [PERSON, NOBODY, OPERATOR_ID] {
        let (status, body) = get(&client, &public(subject), None).await;
        assert_eq!((status, &body), (404, &unknown), "{subject}");
    }
    // A token changes nothing on the public path.
    let token = token(&db, "development-reform", Scope::Read).await;
    let (status, body) = get(&client, &public(PERSON), Some(&token)).await;
    assert_eq!((status, &body), (404, &unknown));
    // The department path needs a token.
    let (status, body) = get(&client, &hub.url(&format!("/api/v1/credit/{PERSON}")), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_missing"))
    );
    // Not a subject at all: refused as such, whoever asks.
    let (status, body) = get(&client, &public("not-a-code"), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
}

#[tokio::test]
async fn another_department_sees_a_person_masked_the_owner_unmasked_and_reads_are_audited() {
    let Started {
        _dir,
        config_file,
        db,
        hub,
        client,
    } = started().await;
    let url = hub.url(&format!("/api/v1/credit/{PERSON}"));
    let owner = token(&db, "development-reform", Scope::Read).await;
    let other = token(&db, "civil-affairs", Scope::Read).await;
    let publisher = token(&db, "civil-affairs", Scope::Publish).await;

    let (status, body) = get(&client, &url, Some(&publisher)).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("wrong_scope")));

    // Without any grant, another department sees nothing, and is told which datasets.
    let (status, profile) = get(&client, &url, Some(&other)).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["entries"], json!([]));
    assert_eq!(
        profile["withheld"],
        json!([
            "administrative-penalties",
            "credit-black-list",
            "credit-commitments",
            "credit-red-list"
        ])
    );

    // With a grant, the granted fields, masked by the manifest's rule.
    subscribe(
        &client,
        &hub,
        &other,
        "credit-black-list",
        &[
            "entry_number",
            "person_name",
            "subject_id_number",
            "list_date",
        ],
    )
    .await;
    let (status, profile) = get(&client, &url, Some(&other)).await;
    assert_eq!(status, 200, "{profile}");
    let black = entry(&profile, "credit-black-list");
    assert_eq!(black["published"], true);
    assert_eq!(black["record"]["person_name"], "孙*强");
    let hashed = black["record"]["subject_id_number"].as_str().unwrap();
    assert_eq!(hashed.len(), 64, "{hashed}");
    assert!(hashed.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(black["record"].get("reason").is_none());
    assert!(
        !profile["entries"].to_string().contains(PERSON),
        "{profile}"
    );

    // The owner sees its entry as stored.
    let (status, own) = get(&client, &url, Some(&owner)).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(entry(&own, "credit-black-list")["record"], person_black());

    // Every read is audited, and no entry holds the raw identity number.
    let reads: Vec<(String, Option<String>, Vec<String>, String)> = sqlx::query_as(
        "SELECT actor, subject, keys, detail FROM audit_log WHERE action = 'credit.read'
         ORDER BY seq",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let actors: Vec<&str> = reads.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        actors,
        ["civil-affairs", "civil-affairs", "development-reform"]
    );
    assert_eq!(reads[1].2, ["credit-black-list:PJ-BL-2024-000266"]);
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE concat_ws(' ', subject, detail, keys::text) LIKE $1",
    )
    .bind(format!("%{PERSON}%"))
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    assert!(reads
        .iter()
        .all(|r| r.1.as_deref().is_some_and(|s| !s.is_empty())));

    let out = bohai_ok(&config_file, &["audit", "verify", "--json"]);
    let verified: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
}

/// A fresh database holding the entries, with the city CA and market regulation's seal
/// (which issues food business permits): its folder, configuration, configuration file
/// (with the master key) and pool.
async fn issuing() -> (
    tempfile::TempDir,
    bohai_hub::config::Config,
    std::path::PathBuf,
    sqlx::PgPool,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = prepared_config().await.unwrap();
    config.pki.master_key_file = dir.path().join("state/master.key");
    let file = bohai_tests::write_config_with_master_key(&config, dir.path()).unwrap();
    bohai_ok(&file, &["seal", "init-ca"]);
    bohai_ok(&file, &["seal", "issue", "market-regulation"]);
    let db = bohai_hub::database::pool(&config.database).unwrap();
    store(&db).await;
    (dir, config, file, db)
}

/// A black-list entry of `credit_code` from `list` to `end` days from today.
fn black_entry(number: &str, credit_code: &str, list: i64, end: i64) -> Value {
    let mut e = company_black();
    e["entry_number"] = json!(number);
    e["subject_credit_code"] = json!(credit_code);
    e["list_date"] = json!(day(list));
    e["end_date"] = json!(day(end));
    e
}

/// A food business permit request for `credit_code`, its legal representative's identity
/// number `rep_id` if any.
fn food_permit(credit_code: &str, rep_id: Option<&str>) -> Value {
    let registry = bohai_schemas::Registry::load_builtin().unwrap();
    let t = registry.licence_type("food-business-permit").unwrap();
    let line = std::fs::read_to_string(t.dir.join("examples/valid.jsonl")).unwrap();
    let mut subject: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    subject["holder"]["credit_code"] = json!(credit_code);
    if let Some(id) = rep_id {
        subject["fields"]["responsible_person_id_number"] = json!(id);
    }
    json!({"type": "food-business-permit", "holder": subject["holder"], "fields": subject["fields"]})
}

/// Issue 19, joint discipline at the licence counter: a food business permit consults the
/// black list for the operator's credit code and its legal representative's identity
/// number. A subject with an entry in force is refused with `credit_listed` and the entry;
/// entries not in force yet or no longer do not refuse; an officer (a named person) may
/// override with a reason, recorded with the licence; a business licence allows no override;
/// bulk import reports a listed line like any other refusal; a listing pushed through the
/// pipeline takes effect at the counter; every check is audited without raw identity numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joint_discipline_refuses_listed_subjects_at_the_counter_and_records_an_override() {
    const ENDED: &str = "91211102MA0R8P3Q5L";
    const NOT_YET: &str = "91211103MA0U2F6B4G";
    const PUSHED: &str = "91211104MA0T5K8M6C";
    let (dir, config, file, db) = issuing().await;
    for (number, code, list, end) in [
        ("PJ-BL-2023-000410", ENDED, -400, -1),
        ("PJ-BL-2026-000411", NOT_YET, 10, 700),
    ] {
        let record = black_entry(number, code, list, end);
        sqlx::query(
            "INSERT INTO repository_records (dataset, pk, data, version, source)
             VALUES ('credit-black-list', $1, $2, 1, 'test')",
        )
        .bind(number)
        .bind(&record)
        .execute(&db)
        .await
        .unwrap();
    }
    for code in [ENDED, NOT_YET, PUSHED] {
        assert!(
            bohai_schemas::formats::check_credit_code(code).is_ok(),
            "{code}"
        );
    }
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let issue = |token: String, body: Value| {
        let url = hub.url("/api/v1/licences");
        async move { bohai_tests::post_json(&url, &token, &body).await }
    };
    let clerk = token(&db, "market-regulation", Scope::Issue).await;

    // The operator listed: refused, the entry named, where and whether it may be overridden.
    let (status, body) = issue(clerk.clone(), food_permit(COMPANY, None)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "credit_listed", "{body}");
    assert_eq!(body["pointer"], "/holder/credit_code", "{body}");
    let message = body["message"].as_str().unwrap();
    for said in [
        "PJ-BL-2024-000073",
        "市场监督管理严重违法失信名单",
        "officer may override",
    ] {
        assert!(message.contains(said), "{said}: {message}");
    }
    // The legal representative listed (as a natural person): refused too.
    let (status, body) = issue(clerk.clone(), food_permit(UNKNOWN, Some(PERSON))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["pointer"], "/fields/responsible_person_id_number");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("PJ-BL-2024-000266"));
    assert!(
        !body["message"].as_str().unwrap().contains(PERSON),
        "{body}"
    );
    // Nobody listed, an entry that ended yesterday, one that starts in ten days: issued.
    for (code, rep) in [(UNKNOWN, Some(NOBODY)), (ENDED, None), (NOT_YET, None)] {
        let (status, body) = issue(clerk.clone(), food_permit(code, rep)).await;
        assert_eq!(status, 201, "{code}: {body}");
    }

    // An override: needs a named officer, then issues, recorded with the licence.
    let mut overridden = food_permit(COMPANY, None);
    overridden["discipline_override"] = json!({"reason": "法院裁定中止执行（〔2026〕辽11执异12号）",
                                              "entries": ["PJ-BL-2024-000073"]});
    let (status, body) = issue(clerk.clone(), overridden.clone()).await;
    assert_eq!(status, 400, "an override by no one in particular: {body}");
    // An override given in advance, for entries not seen, covers nothing.
    let mut blind = food_permit(COMPANY, None);
    blind["discipline_override"] = json!({"reason": "一律放行", "entries": ["PJ-BL-2024-999999"]});
    let (status, body) = issue(clerk.clone(), blind).await;
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("credit_listed")),
        "{body}"
    );
    // A request that breaks the type's schema is refused for that, listed or not: the counter
    // does not tell whether a bare identity number is listed.
    let mut bare = food_permit(UNKNOWN, Some(PERSON));
    bare["fields"] = json!({"responsible_person_id_number": PERSON});
    let (status, body) = issue(clerk.clone(), bare).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("licence_invalid")),
        "{body}"
    );
    let officer = auth::create_token_for(
        &db,
        "market-regulation",
        &[Scope::Issue, Scope::Read],
        None,
        Some("wang.li"),
    )
    .await
    .unwrap()
    .secret;
    let (status, issued) = issue(officer.clone(), overridden).await;
    assert_eq!(status, 201, "{issued}");
    let number = issued["number"].as_str().unwrap();
    let (status, shown) = get(
        &reqwest::Client::new(),
        &hub.url(&format!("/api/v1/licences/{number}")),
        Some(&officer),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    let recorded = &shown["discipline_overrides"][0];
    assert_eq!(recorded["officer"], "wang.li", "{shown}");
    assert_eq!(recorded["version"], 1);
    assert_eq!(recorded["matches"][0]["entry"], "PJ-BL-2024-000073");
    assert!(recorded["reason"].as_str().unwrap().contains("中止执行"));

    // Renewing is a new decision: refused while the operator is listed, unless overridden.
    let renew = hub.url(&format!("/api/v1/licences/{number}/renew"));
    let (status, body) = bohai_tests::post_json(&renew, &officer, &json!({})).await;
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("credit_listed")),
        "{body}"
    );
    let (status, body) = bohai_tests::post_json(
        &renew,
        &officer,
        &json!({"discipline_override": {"reason": "法院裁定中止执行，延续经营", "entries": ["PJ-BL-2024-000073"]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, shown) = get(
        &reqwest::Client::new(),
        &hub.url(&format!("/api/v1/licences/{number}")),
        Some(&officer),
    )
    .await;
    let versions: Vec<&Value> = shown["discipline_overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["version"])
        .collect();
    assert_eq!(versions, [&json!(1), &json!(2)], "{shown}");

    // A business licence allows no override, whoever asks.
    let registry = bohai_schemas::Registry::load_builtin().unwrap();
    let bl = registry.licence_type("business-licence").unwrap();
    let line = std::fs::read_to_string(bl.dir.join("examples/valid.jsonl")).unwrap();
    let mut subject: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    subject["holder"]["credit_code"] = json!(COMPANY);
    let body = json!({"type": "business-licence", "holder": subject["holder"], "fields": subject["fields"],
                      "discipline_override": {"reason": "试一试", "entries": ["PJ-BL-2024-000073"]}});
    let (status, body) = issue(officer.clone(), body).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("allows no override"),
        "{body}"
    );

    // Bulk import: the listed line is reported with its reason, the others issued.
    let lines: Vec<String> = [food_permit(COMPANY, None), food_permit(UNKNOWN, None)]
        .iter()
        .map(Value::to_string)
        .collect();
    let import = dir.path().join("permits.jsonl");
    std::fs::write(&import, lines.join("\n") + "\n").unwrap();
    let out = bohai_ok(
        &file,
        &["licence", "import", import.to_str().unwrap(), "--json"],
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (summary["issued"].as_u64(), summary["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert_eq!(summary["rejects"][0]["line"], 1, "{summary}");
    assert!(
        summary["rejects"][0]["error"]
            .as_str()
            .unwrap()
            .contains("PJ-BL-2024-000073"),
        "{summary}"
    );

    // A listing pushed by the listing department, through the pipeline, takes effect.
    let publisher = token(&db, "development-reform", Scope::Publish).await;
    let (status, body) = bohai_tests::post_json(
        &hub.url("/api/v1/datasets/credit-black-list/records"),
        &publisher,
        &json!([black_entry("PJ-BL-2026-000412", PUSHED, 0, 730)]),
    )
    .await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    let (status, body) = bohai_tests::eventually(
        std::time::Duration::from_secs(30),
        "the pushed listing at the counter",
        || {
            let (clerk, issue) = (clerk.clone(), &issue);
            async move {
                let (status, body) = issue(clerk, food_permit(PUSHED, None)).await;
                (status != 201).then_some((status, body))
            }
        },
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("PJ-BL-2026-000412"));

    // Every check on the log, the identity numbers hashed; the override with its officer.
    let checks: Vec<(Vec<String>, Value)> = sqlx::query_as(
        "SELECT keys, detail::jsonb FROM audit_log WHERE action = 'credit.discipline_check' ORDER BY seq",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(checks.len() >= 9, "{checks:?}");
    let logged = format!("{checks:?}");
    assert!(
        !logged.contains(PERSON) && !logged.contains(NOBODY),
        "{logged}"
    );
    assert!(logged.contains(COMPANY), "{logged}");
    let refused: usize = checks
        .iter()
        .map(|(_, d)| d["refused"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(refused >= 5, "{logged}");
    let (person,): (Option<String>,) = sqlx::query_as(
        "SELECT person FROM audit_log WHERE action = 'licence.discipline_override' AND subject = $1",
    )
    .bind(number)
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(person.is_some(), "the override's officer is on the log");

    // The check switched off (only to measure what it costs): the listed operator is issued.
    let mut off = config.clone();
    off.licences.credit_discipline = false;
    let off_dir = tempfile::tempdir().unwrap();
    let off_file = bohai_tests::write_config_with_master_key(&off, off_dir.path()).unwrap();
    let holder = off_dir.path().join("holder.json");
    std::fs::write(&holder, food_permit(COMPANY, None).to_string()).unwrap();
    bohai_ok(
        &off_file,
        &[
            "licence",
            "issue",
            "--type",
            "food-business-permit",
            "--holder",
            holder.to_str().unwrap(),
        ],
    );
    let (skipped,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'credit.discipline_skipped'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(skipped, 1, "issuing without the lists is on the log");
}

/// A token of `department` with `scopes`, issued to `person`.
async fn person_token(
    db: &sqlx::PgPool,
    department: &str,
    scopes: &[Scope],
    person: &str,
) -> String {
    auth::create_token_for(db, department, scopes, None, Some(person))
        .await
        .unwrap()
        .secret
}

/// Issue 19, credit repair: the department that listed an entry applies on its subject's
/// behalf with the documents the rule asks for; the dataset's owner decides, by another
/// person, with reasons. A rejected application changes nothing; an approved repair takes the
/// entry out of publication (the department's view marks it, the public query no longer
/// shows it) and out of the discipline check at the licence counter, tells the dataset's
/// subscribers, and every step is on the audit log with its person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_repair_is_decided_by_another_person_and_an_approved_one_takes_the_entry_out() {
    let (_dir, config, file, db) = issuing().await;
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let post = |token: String, path: String, body: Value| {
        let url = hub.url(&path);
        async move { bohai_tests::post_json(&url, &token, &body).await }
    };
    // The company's black-list entry was listed by market-regulation; the list is
    // development-reform's.
    let lister = person_token(
        &db,
        "market-regulation",
        &[Scope::Admin, Scope::Issue],
        "li.na",
    )
    .await;
    let anonymous_lister = token(&db, "market-regulation", Scope::Admin).await;
    let owner = person_token(
        &db,
        "development-reform",
        &[Scope::Admin, Scope::Read],
        "zhao.min",
    )
    .await;
    let owner_as_applicant =
        person_token(&db, "development-reform", &[Scope::Admin], "li.na").await;
    let stranger = person_token(&db, "taxation", &[Scope::Admin], "qian.feng").await;

    // Taxation subscribes to the black list (shared unconditionally) and receives the entry.
    let reader = token(&db, "taxation", Scope::Read).await;
    let until = chrono::Utc::now() + Duration::days(30);
    let (status, sub) = post(
        reader.clone(),
        "/api/v1/subscriptions".to_owned(),
        json!({"dataset": "credit-black-list", "fields": ["entry_number", "subject_credit_code", "list_date", "end_date"],
               "purpose": "joint discipline at the tax counter", "until": until}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let topic = sub["topic"].as_str().unwrap().to_owned();
    let on_topic = |entry: &'static str| {
        let topic = topic.clone();
        move || {
            let topic = topic.clone();
            async move {
                let values = bohai_tests::topic_to_end(&bohai_tests::brokers(), &topic);
                let of: Vec<Value> = values
                    .into_iter()
                    .filter(|v| v["data"]["entry_number"] == entry)
                    .collect();
                (!of.is_empty()).then_some(of)
            }
        }
    };
    bohai_tests::eventually(
        std::time::Duration::from_secs(30),
        "the entry delivered",
        on_topic("PJ-BL-2024-000073"),
    )
    .await;

    let docs = |kinds: &[&str]| -> Value {
        kinds
            .iter()
            .map(|k| json!({"kind": k, "name": format!("{k}.pdf"), "sha256": "5e".repeat(32)}))
            .collect()
    };
    let application = |kinds: &[&str]| {
        json!({"dataset": "credit-black-list", "entry": "PJ-BL-2024-000073",
               "reason": "已全额缴纳罚款并完成整改，作出信用承诺", "documents": docs(kinds)})
    };
    let both = ["履行完毕证明", "信用修复承诺书"];
    let apply = "/api/v1/credit/repairs".to_owned();

    // Refusals: a document missing, no person, not the listing department.
    let (status, body) = post(
        lister.clone(),
        apply.clone(),
        application(&["履行完毕证明"]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing: 信用修复承诺书"),
        "{body}"
    );
    let (status, body) = post(anonymous_lister.clone(), apply.clone(), application(&both)).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("person_required")),
        "{body}"
    );
    let (status, body) = post(stranger.clone(), apply.clone(), application(&both)).await;
    assert_eq!(
        status, 404,
        "another department's entry is as unknown: {body}"
    );

    // Applied, then rejected by the owner: nothing changes.
    let (status, first) = post(lister.clone(), apply.clone(), application(&both)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["state"], "pending");
    let (status, body) = post(lister.clone(), apply.clone(), application(&both)).await;
    assert_eq!(status, 409, "one open application per entry: {body}");
    let decide = |id: &Value, decision: &str| format!("/api/v1/credit/repairs/{id}/{decision}");
    let (status, body) = post(
        lister.clone(),
        decide(&first["id"], "approve"),
        json!({"reason": "自己批准"}),
    )
    .await;
    assert_eq!(
        status, 403,
        "the applicant's department does not own the list: {body}"
    );
    let (status, rejected) = post(
        owner.clone(),
        decide(&first["id"], "reject"),
        json!({"reason": "缺少法院出具的结案证明"}),
    )
    .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
    let profile_url = hub.url(&format!("/api/v1/credit/{COMPANY}"));
    let (_, profile) = get(&client, &profile_url, Some(&owner)).await;
    assert_eq!(
        entry(&profile, "credit-black-list")["published"],
        true,
        "{profile}"
    );
    let clerk = person_token(&db, "market-regulation", &[Scope::Issue], "sun.hao").await;
    let (status, _) = post(
        clerk.clone(),
        "/api/v1/licences".to_owned(),
        food_permit(COMPANY, None),
    )
    .await;
    assert_eq!(status, 409, "still listed at the counter");

    // Applied again, approved by another person of the owner: out of publication and of the
    // discipline check, kept and marked, and the subscriber told.
    let (status, second) = post(lister.clone(), apply.clone(), application(&both)).await;
    assert_eq!(status, 201, "{second}");
    let (status, body) = post(
        owner_as_applicant,
        decide(&second["id"], "approve"),
        json!({"reason": "材料齐全"}),
    )
    .await;
    assert_eq!(status, 403, "the applicant cannot decide it: {body}");
    let (status, approved) = post(
        owner.clone(),
        decide(&second["id"], "approve"),
        json!({"reason": "材料齐全，准予修复"}),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decider_person"], "zhao.min");
    let (status, body) = post(
        owner.clone(),
        decide(&second["id"], "reject"),
        json!({"reason": "再议"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    let (_, profile) = get(&client, &profile_url, Some(&owner)).await;
    let black = entry(&profile, "credit-black-list");
    assert_eq!(black["published"], false, "{profile}");
    assert_eq!(black["repaired_on"], today().to_string(), "{profile}");
    let (status, public) = get(
        &client,
        &hub.url(&format!("/api/v1/public/credit/{COMPANY}")),
        None,
    )
    .await;
    assert_eq!(status, 200, "the penalty is still published: {public}");
    assert!(
        public["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["dataset"] != "credit-black-list"),
        "{public}"
    );
    let (status, body) = post(
        clerk,
        "/api/v1/licences".to_owned(),
        food_permit(COMPANY, None),
    )
    .await;
    assert_eq!(status, 201, "repaired, no longer refused: {body}");
    let delivered = bohai_tests::eventually(
        std::time::Duration::from_secs(30),
        "the repair delivered",
        || {
            let found = on_topic("PJ-BL-2024-000073");
            async move {
                found()
                    .await
                    .and_then(|of| of.into_iter().find(|v| !v["credit_repair"].is_null()))
            }
        },
    )
    .await;
    assert_eq!(
        delivered["credit_repair"]["id"], second["id"],
        "{delivered}"
    );

    // Listed by the owning department, and on the log with persons.
    let (status, listed) = get(&client, &hub.url("/api/v1/credit/repairs"), Some(&owner)).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let steps: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action, person FROM audit_log WHERE action LIKE 'credit.repair.%' ORDER BY seq",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let actions: Vec<&str> = steps.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "credit.repair.applied",
            "credit.repair.rejected",
            "credit.repair.applied",
            "credit.repair.approved"
        ]
    );
    assert!(steps.iter().all(|(_, p)| p.is_some()), "{steps:?}");
    let out = bohai_ok(&file, &["credit", "repair", "list", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // The repair was of the entry as it stood: extended by the list's owner afterwards
    // (through the pipeline, a new version), the entry is published and refused again.
    let publisher = token(&db, "development-reform", Scope::Publish).await;
    let mut extended = company_black();
    extended["end_date"] = json!(day(700));
    extended["updated_at"] = json!("2026-12-01T09:00:00+08:00");
    let (status, body) = bohai_tests::post_json(
        &hub.url("/api/v1/datasets/credit-black-list/records"),
        &publisher,
        &json!([extended]),
    )
    .await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    let black = bohai_tests::eventually(
        std::time::Duration::from_secs(30),
        "the extended entry",
        || async {
            let (_, profile) = get(&client, &profile_url, Some(&owner)).await;
            let black = entry(&profile, "credit-black-list").clone();
            (black["end_date"] == day(700)).then_some(black)
        },
    )
    .await;
    assert_eq!(black["published"], true, "{black}");
    assert!(black["repaired_on"].is_null(), "{black}");
    let (status, again) = post(lister.clone(), apply.clone(), application(&both)).await;
    assert_eq!(status, 201, "the new version may be applied for: {again}");
    assert_eq!(again["entry_version"], 2, "{again}");

    // Every step is in the hash chain, which verifies.
    let out = bohai_ok(&file, &["audit", "verify", "--json"]);
    let verified: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
}
