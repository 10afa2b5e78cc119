//! Notifications reach people: an e-mail through a real SMTP server on 127.0.0.1 and a signed
//! webhook POST over HTTPS (a self-signed certificate the node is told to trust), through the
//! durable outbox — which survives kill -9 with its receivers down, ends a delivery nobody
//! accepts as `failed`, and delivers it once an operator retries it.

mod helpers;

use helpers::binary::{Server, free_port};
use helpers::smtp::SmtpServer;
use helpers::webhook::{Receiver, signed};
use helpers::{book, client_of, eventually, spawn_app_with};
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SECRET: &str = "test-webhook-signing-secret";

/// A message's text with quoted-printable soft line breaks and escapes undone (the parts are
/// encoded by the mailer; ids and codes are ASCII).
fn unfolded(data: &str) -> String {
    let joined = data.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::with_capacity(joined.len());
    let mut rest = joined.as_str();
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match code {
            Some(b) if b.is_ascii() => {
                out.push(b as char);
                rest = &rest[i + 3..];
            }
            _ => {
                out.push('=');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `GET /api/v1/admin/outbox{query}` as `admin`: its status and its deliveries.
async fn outbox(admin: &contrail_client::Client, query: &str) -> (reqwest::StatusCode, Vec<Value>) {
    let answer = admin
        .request(Method::GET, &format!("/api/v1/admin/outbox{query}"))
        .send()
        .await
        .expect("outbox");
    let status = answer.status();
    let body: Value = answer.json().await.expect("json");
    (
        status,
        body["deliveries"].as_array().cloned().unwrap_or_default(),
    )
}

/// The `Message-ID` of a received message, without its brackets.
fn message_id(data: &str) -> Option<String> {
    data.lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID: ")
                .or_else(|| l.strip_prefix("Message-Id: "))
        })
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_booking_sends_one_email_with_the_e_ticket_and_one_signed_https_webhook() {
    let certs = tempfile::tempdir().expect("dir");
    let ca_file = certs.path().join("receiver.pem");
    let receiver = Receiver::https(&ca_file).await;
    let smtp = SmtpServer::start().await;
    let (hook, mail) = (receiver.url(), smtp.url());
    let app = spawn_app_with(move |s| {
        s.notifications.webhook_url = Some(hook);
        s.notifications.webhook_secret = Some(SECRET.into());
        s.notifications.webhook_ca_file = Some(ca_file);
        s.notifications.smtp_url = Some(mail.into());
        s.notifications.email_from = Some("Contrail <tickets@contrail.test>".into());
        s.notifications.first_backoff_ms = 50;
    })
    .await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let number = app
        .api()
        .flight(&flight)
        .await
        .expect("flight")
        .flight_number;
    let (_, customer) = app.customer().await;
    let me = customer.me().await.expect("me");
    let id = book(&customer, &[&flight], 1).await.id;
    customer.pay(&id, "tok_visa", None).await.expect("paid");
    let ticket = customer.tickets().await.expect("tickets").remove(0);

    let arrived = eventually(Duration::from_secs(30), || async {
        !smtp.received().is_empty() && !receiver.received().is_empty()
    })
    .await;
    assert!(
        arrived,
        "mails {:?}, webhook hits {:?}",
        smtp.received(),
        receiver.received()
    );
    // Nothing else is on its way: booking alone notifies nobody, paying once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.received();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, vec![me.email.clone()]);
    let text = unfolded(&mails[0].data);
    for needle in [
        number.as_str(),
        ticket.seat.as_str(),
        ticket.id.as_str(),
        id.as_str(),
    ] {
        assert!(
            text.contains(needle),
            "{needle} is not in the e-mail:\n{text}"
        );
    }
    assert!(
        text.contains("text/plain") && text.contains("text/html"),
        "{text}"
    );
    let mail_id = message_id(&mails[0].data).expect("a Message-ID");
    assert!(
        mail_id.starts_with("dlv_") && mail_id.ends_with("-email@contrail"),
        "{mail_id}"
    );

    let hits = receiver.received();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(
        signed(&hits[0], SECRET),
        "the signature does not verify: {:?}",
        hits[0]
    );
    assert!(!signed(&hits[0], "another-secret-of-some-length"));
    let mut forged = hits[0].clone();
    forged.body = br#"{"kind":"order_cancelled"}"#.to_vec();
    assert!(!signed(&forged, SECRET), "a changed body still verifies");
    let body: Value = serde_json::from_slice(&hits[0].body).expect("json");
    assert_eq!(body["kind"], "order_confirmed");
    assert_eq!(body["order_id"], id.as_str());
    assert_eq!(
        body["delivery_id"].as_str(),
        hits[0].headers.get("contrail-delivery").map(String::as_str)
    );

    let admin = app.admin().await;
    let (status, delivered) = outbox(&admin, "?state=delivered").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let channels: BTreeSet<&str> = delivered
        .iter()
        .filter_map(|d| d["channel"].as_str())
        .collect();
    assert_eq!(channels, BTreeSet::from(["email", "webhook"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_ends_in_failed_and_an_operator_retry_delivers_it() {
    let receiver = Receiver::http().await;
    receiver.accepting.store(false, Ordering::SeqCst);
    let hook = receiver.url();
    let app = spawn_app_with(move |s| {
        s.notifications.webhook_url = Some(hook);
        s.notifications.webhook_secret = Some(SECRET.into());
        s.notifications.max_attempts = 3;
        s.notifications.first_backoff_ms = 20;
        s.notifications.max_backoff_ms = 100;
    })
    .await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let id = book(&customer, &[&flight], 1).await.id;
    customer.pay(&id, "tok_visa", None).await.expect("paid");
    let admin = app.admin().await;
    let failed = eventually(Duration::from_secs(30), || async {
        outbox(&admin, "?state=failed").await.1.len() == 1
    })
    .await;
    assert!(
        failed,
        "the delivery never failed: {:?}",
        outbox(&admin, "").await
    );
    assert_eq!(
        receiver.attempts.load(Ordering::SeqCst),
        3,
        "exactly the configured attempts"
    );
    let (_, listed) = outbox(&admin, "?state=failed").await;
    let delivery = &listed[0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["channel"], "webhook");
    assert!(
        delivery["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{delivery}"
    );
    let delivery_id = delivery["id"].as_str().expect("id").to_owned();

    // The listing's query is checked; the retry is for admins, and only of a failed delivery.
    assert_eq!(
        outbox(&admin, "?state=lost").await.0,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        outbox(&admin, "?limit=0").await.0,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        outbox(&admin, "?colour=red").await.0,
        reqwest::StatusCode::BAD_REQUEST
    );
    let retry = |who: contrail_client::Client, id: String| async move {
        let answer = who
            .request(Method::POST, &format!("/api/v1/admin/outbox/{id}/retry"))
            .send()
            .await
            .expect("retry");
        let status = answer.status();
        (status, answer.json::<Value>().await.expect("json"))
    };
    let (status, body) = retry(customer.clone(), delivery_id.clone()).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    let unknown = "dlv_0123456789abcdef0123456789abcdef-webhook".to_owned();
    assert_eq!(
        retry(admin.clone(), unknown).await.0,
        reqwest::StatusCode::NOT_FOUND
    );
    assert_eq!(
        retry(admin.clone(), "nonsense".into()).await.0,
        reqwest::StatusCode::NOT_FOUND
    );

    receiver.accepting.store(true, Ordering::SeqCst);
    // Two operators retry at once: one starts it over, the other is told it is pending.
    let (first, second) = futures::join!(
        retry(admin.clone(), delivery_id.clone()),
        retry(admin.clone(), delivery_id.clone())
    );
    let (won, lost) = if first.0 == reqwest::StatusCode::OK {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(won.0, reqwest::StatusCode::OK, "{}", won.1);
    assert_eq!(won.1["state"], "pending");
    assert_eq!(lost.0, reqwest::StatusCode::CONFLICT, "{}", lost.1);
    let delivered = eventually(Duration::from_secs(30), || async {
        !receiver.received().is_empty()
    })
    .await;
    assert!(delivered, "the retried delivery never arrived");
    let hit = &receiver.received()[0];
    assert_eq!(hit.headers.get("contrail-delivery"), Some(&delivery_id));
    assert!(signed(hit, SECRET));
    let settled = eventually(Duration::from_secs(10), || async {
        outbox(&admin, "?state=delivered").await.1.len() == 1
    })
    .await;
    assert!(settled, "{:?}", outbox(&admin, "").await);
    let (status, body) = retry(admin.clone(), delivery_id).await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_failed");
}

/// 50 paid orders → 100 deliveries (an e-mail and a webhook each) pending while the SMTP server
/// and the webhook receiver are down; kill -9; the receivers come up; the node restarts and
/// delivers every one, at least once, each repeat with the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_kill_9_and_arrive_once_their_receivers_are_up() {
    let data = tempfile::tempdir().expect("dir");
    let (smtp_port, hook_port) = (free_port(), free_port());
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let hook_url = format!("http://127.0.0.1:{hook_port}/hooks/contrail");
    let env = [
        ("CONTRAIL__NOTIFICATIONS__SMTP_URL", smtp_url.as_str()),
        (
            "CONTRAIL__NOTIFICATIONS__EMAIL_FROM",
            "tickets@contrail.test",
        ),
        ("CONTRAIL__NOTIFICATIONS__WEBHOOK_URL", hook_url.as_str()),
        ("CONTRAIL__NOTIFICATIONS__WEBHOOK_SECRET", SECRET),
        ("CONTRAIL__NOTIFICATIONS__MAX_ATTEMPTS", "100"),
        ("CONTRAIL__NOTIFICATIONS__FIRST_BACKOFF_MS", "50"),
        ("CONTRAIL__NOTIFICATIONS__MAX_BACKOFF_MS", "400"),
    ];
    let server = Server::start_with(data.path(), &env);
    let app = client_of(&server.base);
    let (_, flight) = app.one_flight(25, "AB").await;
    let customers = app.customers(50).await;
    let paid = customers.iter().map(|(_, customer)| {
        let flight = flight.clone();
        async move {
            let id = book(customer, &[&flight], 1).await.id;
            customer.pay(&id, "tok_visa", None).await.expect("paid");
        }
    });
    futures::future::join_all(paid).await;
    let admin = app.admin().await;
    let before = outbox(&admin, "?limit=1000").await.1;
    assert_eq!(before.len(), 100, "{before:#?}");
    assert!(
        before
            .iter()
            .all(|d| matches!(d["state"].as_str(), Some("pending" | "retrying"))),
        "{before:#?}"
    );
    let expected: BTreeSet<String> = before
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect();
    server.kill9();

    let smtp = SmtpServer::start_on(format!("127.0.0.1:{smtp_port}").parse().expect("addr")).await;
    let receiver = Receiver::http_on(format!("127.0.0.1:{hook_port}").parse().expect("addr")).await;
    let server = Server::start_with(data.path(), &env);
    let app = client_of(&server.base);
    let all_arrived = eventually(Duration::from_secs(90), || async {
        let mails: BTreeSet<String> = smtp
            .received()
            .iter()
            .filter_map(|m| message_id(&m.data))
            .map(|id| id.trim_end_matches("@contrail").to_owned())
            .collect();
        let hooks: BTreeSet<String> = receiver
            .received()
            .iter()
            .filter_map(|h| h.headers.get("contrail-delivery").cloned())
            .collect();
        mails.union(&hooks).cloned().collect::<BTreeSet<_>>() == expected
    })
    .await;
    assert!(
        all_arrived,
        "{} mails and {} webhook deliveries of {} arrived",
        smtp.received().len(),
        receiver.received().len(),
        expected.len()
    );
    // A repeat is the same delivery: the same id always carries the same notification.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for hit in receiver.received() {
        assert!(signed(&hit, SECRET));
        let body: Value = serde_json::from_slice(&hit.body).expect("json");
        let delivery = hit.headers["contrail-delivery"].clone();
        let notification = body["id"].as_str().expect("id").to_owned();
        if let Some(before) = seen.insert(delivery.clone(), notification.clone()) {
            assert_eq!(before, notification, "{delivery} carried two notifications");
        }
    }
    let admin = app.admin().await;
    let settled = eventually(Duration::from_secs(30), || async {
        let now = outbox(&admin, "?limit=1000").await.1;
        now.len() == 100 && now.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    assert!(settled, "{:#?}", outbox(&admin, "?limit=1000").await.1);
    drop(server);
}

/// A customer's outbox moves with the customer: a delivery retrying on node-b (its receiver
/// refuses) is taken up by node-a once node-b is drained, and arrives there with its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_delivery_moves_with_its_customer_when_the_node_is_drained() {
    use helpers::cluster::{cluster_with, customer_on, flights_owned_by, formed};
    let receiver = Receiver::http().await;
    receiver.accepting.store(false, Ordering::SeqCst);
    let hook = receiver.url();
    let env = [
        ("CONTRAIL__NOTIFICATIONS__WEBHOOK_URL", hook.as_str()),
        ("CONTRAIL__NOTIFICATIONS__WEBHOOK_SECRET", SECRET),
        ("CONTRAIL__NOTIFICATIONS__MAX_ATTEMPTS", "100"),
        ("CONTRAIL__NOTIFICATIONS__FIRST_BACKOFF_MS", "50"),
        ("CONTRAIL__NOTIFICATIONS__MAX_BACKOFF_MS", "200"),
    ];
    let root = tempfile::tempdir().expect("dir");
    let names = ["node-a", "node-b"];
    let mut nodes = cluster_with(root.path(), &names, &env).await;
    let a = nodes[0].app.clone_client();
    let admin = a.admin().await;
    helpers::airport(&admin, "DEL").await;
    helpers::airport(&admin, "BOM").await;
    let craft = helpers::aircraft(&admin, 5, "AB").await;
    let leaders = formed(&nodes.iter().collect::<Vec<_>>(), &admin, 2).await;
    let flight = flights_owned_by(&admin, &craft, &leaders, &["node-a"]).await["node-a"].clone();
    let customer = customer_on(&a, &leaders, "node-b").await;
    let id = book(&customer, &[&flight], 1).await.id;
    customer.pay(&id, "tok_visa", None).await.expect("paid");
    let retrying = eventually(Duration::from_secs(30), || async {
        receiver.attempts.load(Ordering::SeqCst) >= 2
            && outbox(&admin, "")
                .await
                .1
                .first()
                .is_some_and(|d| d["state"] == "retrying")
    })
    .await;
    assert!(retrying, "{:?}", outbox(&admin, "").await.1);
    let delivery = outbox(&admin, "").await.1[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    admin.drain("node-b").await.expect("drained");
    // Stopped once every group has let it go (the operator's rule): node-a alone leads all.
    formed(&[&nodes[0]], &admin, 1).await;
    nodes[1].kill9();
    receiver.accepting.store(true, Ordering::SeqCst);
    let arrived = eventually(Duration::from_secs(60), || async {
        receiver
            .received()
            .iter()
            .any(|h| h.headers.get("contrail-delivery") == Some(&delivery))
    })
    .await;
    assert!(
        arrived,
        "the delivery never arrived after the drain: {:?}",
        outbox(&admin, "").await.1
    );
    let settled = eventually(Duration::from_secs(30), || async {
        let now = outbox(&admin, "").await.1;
        now.len() == 1 && now[0]["state"] == "delivered" && now[0]["id"] == delivery.as_str()
    })
    .await;
    assert!(settled, "{:?}", outbox(&admin, "").await.1);
}
