//! Slow and heavy clients (issue 15, item 9), each attack against a running hub: a client
//! that sends its headers a byte at a time, a token that sends more than its rate, and
//! requests without a token that hold every database connection they can get.
//! (The trust bundle signed once while current is `licences.rs`.)

#![allow(clippy::unwrap_used)] // a test that cannot unwrap should fail loudly

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bohai_hub::auth::{self, Scope};
use bohai_tests::{eventually, owner_pool, prepared_config, RunningHub};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that sends its request head one byte every 100 ms (a minute for the whole
/// head) is cut off once `http.header_timeout` has passed, long before it is done.
#[tokio::test]
async fn a_client_sending_its_headers_byte_by_byte_is_cut_off() {
    let mut config = prepared_config().await.unwrap();
    config.http.header_timeout = Duration::from_secs(1);
    let hub = RunningHub::start(config).await.unwrap();
    let addr = hub.base_url.strip_prefix("http://").unwrap().to_owned();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(600)
    );
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut sent = 0;
    let mut answer = Vec::new();
    let cut = loop {
        if sent == head.len() {
            break false;
        }
        if stream
            .write_all(&head.as_bytes()[sent..=sent])
            .await
            .is_err()
        {
            break true;
        }
        sent += 1;
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            // Closed, or answered (408) before the head was complete.
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                break true;
            }
            Err(_) => {}
        }
    };
    assert!(
        cut,
        "the hub waited for the whole head, {} bytes over a minute",
        head.len()
    );
    assert!(sent < head.len() / 2, "cut off only after {sent} bytes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A client that sends its head at once is served as before.
    let r = reqwest::get(hub.url("/healthz")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A token past its rate and burst is answered 429 `rate_limited` with `Retry-After`; another
/// token of the same department, and requests without a token, are not limited by it.
#[tokio::test]
async fn a_token_past_its_rate_is_answered_429_with_retry_after() {
    let mut config = prepared_config().await.unwrap();
    // One request a minute after a burst of 5: the sixth within the minute is refused.
    config.http.token_requests_per_minute = 1;
    config.http.token_burst = 5;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let token = || async {
        auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read], None)
            .await
            .unwrap()
            .secret
    };
    let (busy, other) = (token().await, token().await);
    let http = reqwest::Client::new();
    let url = hub.url("/api/v1/subscriptions");
    for i in 0..5 {
        let r = http.get(&url).bearer_auth(&busy).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "request {i}");
    }
    let r = http.get(&url).bearer_auth(&busy).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");

    let r = http.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "another token is limited too");
    let r = http.get(hub.url("/api/v1/datasets")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // The document declares the answer.
    let doc: Value = http
        .get(hub.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/api/v1/subscriptions"]["get"]["responses"]
            .get("429")
            .is_some(),
        "429 not in the document"
    );
}

/// Requests without a token that each hold a database connection (here: dataset statistics
/// held up by a lock) take what the pool for such requests has, and a department's request
/// is still answered from a pool of its own.
#[tokio::test]
async fn requests_without_a_token_cannot_take_the_connections_of_the_rest() {
    let mut config = prepared_config().await.unwrap();
    config.database.max_connections = 3;
    config.database.public_max_connections = 2;
    config.database.connect_timeout = Duration::from_secs(2);
    config.pipeline.sink = false;
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let owner = owner_pool(&config).await.unwrap();
    let hub = RunningHub::start(config).await.unwrap();
    let reader = auth::create_scoped_token(&db, "civil-affairs", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;
    let http = reqwest::Client::new();
    // The hub is up and its schema ready before the lock is taken.
    let r = http
        .get(hub.url("/api/v1/subscriptions"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Every statistics request waits on the lock, holding its connection.
    let mut lock = owner.begin().await.unwrap();
    sqlx::query("LOCK TABLE sink_counts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    const ANONYMOUS: usize = 6;
    let answered = Arc::new(AtomicUsize::new(0));
    let mut requests = Vec::new();
    for _ in 0..ANONYMOUS {
        let (http, url, answered) = (
            http.clone(),
            hub.url("/api/v1/datasets/business-registrations/stats"),
            Arc::clone(&answered),
        );
        requests.push(tokio::spawn(async move {
            let status = http.get(url).send().await.unwrap().status().as_u16();
            answered.fetch_add(1, Ordering::SeqCst);
            status
        }));
    }
    // Until each holds a connection waiting on the lock or was answered without one.
    let waiting = eventually(
        Duration::from_secs(60),
        "every anonymous request to hold a connection or be answered",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks
                 WHERE NOT granted AND relation = 'sink_counts'::regclass",
            )
            .fetch_one(&owner)
            .await
            .unwrap();
            let waiting = usize::try_from(waiting).unwrap();
            (waiting + answered.load(Ordering::SeqCst) == ANONYMOUS).then_some(waiting)
        },
    )
    .await;
    assert!(waiting >= 1, "no request reached the database");

    // A department's request is answered meanwhile.
    let r = http
        .get(hub.url("/api/v1/subscriptions"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(
        status, 200,
        "{waiting} requests without a token held the connections: {body}"
    );

    lock.commit().await.unwrap();
    for r in requests {
        let status = r.await.unwrap();
        assert!(status == 200 || status == 503, "{status}");
    }
}

/// Opens a push of `dataset` as `token` whose body (chunked) sends `first` and then stalls;
/// the connection stays open while the returned stream lives.
async fn stalled_push(
    hub: &RunningHub,
    token: &str,
    dataset: &str,
    first: &str,
) -> tokio::net::TcpStream {
    let addr = hub.base_url.strip_prefix("http://").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let line = format!("{first}\n");
    let request = format!(
        "POST /api/v1/datasets/{dataset}/records HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{line}\r\n",
        line.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Whether the hub has answered (or closed) the push on `stream`, without waiting.
fn answered(stream: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A department that opens pushes and stalls their bodies (one line, then nothing) holds at
/// most `http.department_pushes` of them: one more is answered 429 `too_many_pushes` with
/// `Retry-After`, while another department pushes as usual, and once the stalled ones are
/// gone the department pushes again. Without the limit, every stalled push held its records
/// until the body's idle timeout, as many as a token's burst allowed.
#[tokio::test]
async fn a_department_stalling_its_pushes_holds_only_its_own_slots() {
    let mut config = prepared_config().await.unwrap();
    config.http.department_pushes = 2;
    let hub = RunningHub::start(config.clone()).await.unwrap();
    let db = bohai_hub::database::pool(&config.database).unwrap();
    let registry = bohai_schemas::Registry::load(&config.registry.dir).unwrap();
    let market = bohai_tests::token(&db, "market-regulation").await;
    let police = bohai_tests::token(&db, "public-security").await;
    let record = |dataset: &str, seed: u64| {
        let mut g =
            bohai_hub::gen::Generator::new(registry.dataset(dataset).unwrap(), seed, 0.0).unwrap();
        serde_json::to_string(&Value::Object(g.next_record().record)).unwrap()
    };
    let push = |token: &str, dataset: &str, line: String| {
        reqwest::Client::new()
            .post(hub.url(&format!("/api/v1/datasets/{dataset}/records")))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(line)
            .send()
    };
    let business = "business-registrations";
    let residents = "resident-registrations";
    // Two stalled pushes hold both slots before the next one comes. A push of the test's
    // may be read before a stalled one it raced, taking its slot and leaving the stalled one
    // answered 429; such a one is opened again.
    let mut stalled = Vec::new();
    let mut seed = 100;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let third = loop {
        stalled.retain(|s: &tokio::net::TcpStream| !answered(s));
        while stalled.len() < 2 {
            seed += 1;
            stalled.push(stalled_push(&hub, &market, business, &record(business, seed)).await);
        }
        let r = push(&market, business, record(business, 3)).await.unwrap();
        if r.status().as_u16() == 429 {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "two stalled pushes never held both slots; the last push got {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["code"], "too_many_pushes", "{body}");

    let other = push(&police, residents, record(residents, 4))
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);

    drop(stalled);
    let again = eventually(
        Duration::from_secs(10),
        "the stalled pushes' slots to be given back",
        || async {
            let r = push(&market, business, record(business, 5)).await.unwrap();
            (r.status().as_u16() == 200).then_some(r)
        },
    )
    .await;
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["accepted"], 1, "{body}");
}
