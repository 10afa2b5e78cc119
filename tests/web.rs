//! The web site in a real browser (headless Chromium over WebDriver) against real nodes on
//! random loopback ports, and its session and CSRF rules over plain HTTP.

mod helpers;

use fantoccini::Locator;
use helpers::browser::{
    Driver, click, fill, find, path, screenshot, set_value, wait_class, wait_text,
};
use helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// Whether the page is no wider than the window (nothing to scroll sideways at phone width).
async fn fits(browser: &fantoccini::Client) -> bool {
    browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Fills in and sends the sign-up form the browser shows.
async fn sign_up(browser: &fantoccini::Client, name: &str, email: &str, password: &str) {
    fill(browser, "input[name=name]", name).await;
    fill(browser, "input[name=email]", email).await;
    fill(browser, "input[name=password]", password).await;
    click(browser, "form.account button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traveller_books_two_seats_pays_and_cancels_while_another_browser_sees_them_sell() {
    let app = spawn_app().await;
    let (_admin, flight) = app.one_flight(6, "ABCDEF").await;
    let driver = Driver::start().await;
    let traveller = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let watcher = driver.browser(DESKTOP.0, DESKTOP.1).await;

    // Search.
    traveller
        .goto(&format!("{}/", app.base))
        .await
        .expect("home");
    fill(&traveller, "input[name=origin]", "DEL").await;
    fill(&traveller, "input[name=destination]", "BOM").await;
    set_value(&traveller, "input[name=date]", "2031-03-01").await;
    fill(&traveller, "input[name=passengers]", "2").await;
    click(&traveller, "form.search button[type=submit]").await;
    let results = wait_text(&traveller, "a result", |t| t.contains("DEL → BOM")).await;
    assert!(results.contains("seats left"), "{results}");
    assert!(results.contains("USD 50.00"), "{results}");
    screenshot(&traveller, "search").await;

    // The flight and its seat map; a second browser watches the same map.
    click(&traveller, &format!("a[href^='/flights/{flight}']")).await;
    find(&traveller, "label[for=seat-1A]").await;
    watcher
        .goto(&format!("{}/flights/{flight}", app.base))
        .await
        .expect("watcher");
    wait_class(&watcher, "label[for=seat-1A]", "available").await;
    click(&traveller, "label[for=seat-1A]").await;
    click(&traveller, "label[for=seat-1B]").await;
    click(&traveller, "form.hold button[type=submit]").await;

    // Not signed in: sign up, and come back to the same seats.
    wait_text(&traveller, "the sign-in page", |t| t.contains("Sign in")).await;
    assert_eq!(path(&traveller).await, "/signin");
    click(&traveller, "main a[href^='/signup']").await;
    sign_up(
        &traveller,
        "Ada Lovelace",
        "ada@example.com",
        "analytical-engine-1843",
    )
    .await;
    find(&traveller, "input#seat-1A:checked").await;
    find(&traveller, "input#seat-1B:checked").await;
    let names = traveller
        .find_all(Locator::Css("input[name=passenger]"))
        .await
        .expect("name fields");
    assert_eq!(names.len(), 2, "one name field per passenger");
    names[0].send_keys("Ada Lovelace").await.expect("name");
    names[1].send_keys("Charles Babbage").await.expect("name");
    screenshot(&traveller, "flight").await;
    click(&traveller, "form.hold button[type=submit]").await;

    // Held: a countdown, and the watcher sees the seats go.
    let held = wait_text(&traveller, "the held trip", |t| t.contains("left)")).await;
    assert!(held.contains("held until"), "{held}");
    assert!(held.contains("Seats 1A, 1B"), "{held}");
    wait_class(&watcher, "label[for=seat-1A]", "held").await;
    wait_class(&watcher, "label[for=seat-1B]", "held").await;

    // Pay with the approved test card: e-tickets.
    click(&traveller, "form.pay button[type=submit]").await;
    let tickets = wait_text(&traveller, "e-tickets", |t| t.contains("E-ticket")).await;
    for expected in [
        "Ada Lovelace",
        "Charles Babbage",
        "1A",
        "1B",
        "DEL → BOM",
        "confirmed",
    ] {
        assert!(tickets.contains(expected), "no {expected:?} in\n{tickets}");
    }
    assert_eq!(
        traveller
            .find_all(Locator::Css("article.ticket"))
            .await
            .map(|t| t.len())
            .unwrap_or_default(),
        2
    );
    screenshot(&traveller, "tickets").await;
    wait_class(&watcher, "label[for=seat-1A]", "sold").await;
    wait_class(&watcher, "label[for=seat-1B]", "sold").await;
    assert!(
        watcher
            .find(Locator::Css("input#seat-1A:disabled"))
            .await
            .is_ok(),
        "a sold seat cannot be picked"
    );

    // My trips, then cancel with a refund.
    traveller
        .goto(&format!("{}/trips", app.base))
        .await
        .expect("trips");
    let trips = wait_text(&traveller, "my trips", |t| t.contains("confirmed")).await;
    assert!(trips.contains("DEL → BOM"), "{trips}");
    assert!(
        trips.contains("order confirmed"),
        "the notification: {trips}"
    );
    click(&traveller, "main a[href^='/trips/ord_']").await;
    click(&traveller, "form.cancel button[type=submit]").await;
    traveller.accept_alert().await.expect("the confirmation");
    let refunded = wait_text(&traveller, "the refund", |t| t.contains("refunded")).await;
    assert!(
        refunded.contains("USD 100.00 has been refunded"),
        "{refunded}"
    );
    let seats = app.seat_statuses(&flight).await;
    assert_eq!(seats.get("1A").map(String::as_str), Some("available"));
    assert_eq!(seats.get("1B").map(String::as_str), Some("available"));
    wait_class(&watcher, "label[for=seat-1A]", "available").await;

    // Phone width: the same pages fit, and are not blank.
    traveller
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone width");
    for (page, name) in [
        (
            "/?origin=DEL&destination=BOM&passengers=2".to_owned(),
            "phone-search",
        ),
        (format!("/flights/{flight}?passengers=2"), "phone-flight"),
        ("/trips".to_owned(), "phone-trips"),
    ] {
        traveller
            .goto(&format!("{}{page}", app.base))
            .await
            .expect("page");
        find(&traveller, "main h1").await;
        assert!(fits(&traveller).await, "{page} is wider than a phone");
        screenshot(&traveller, name).await;
    }
    let _ = traveller.close().await;
    let _ = watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_is_said_plainly_the_hold_stays_and_a_typed_script_stays_text() {
    let app = spawn_app().await;
    let (_admin, flight) = app.one_flight(4, "ABCD").await;
    let driver = Driver::start().await;
    let browser = driver.browser(DESKTOP.0, DESKTOP.1).await;
    browser
        .goto(&format!("{}/signup?next=/flights/{flight}", app.base))
        .await
        .expect("signup");
    sign_up(
        &browser,
        "Mallory",
        "mallory@example.com",
        "not-a-common-password-9",
    )
    .await;
    click(&browser, "label[for=seat-2C]").await;
    fill(
        &browser,
        "input[name=passenger]",
        "<script>alert(1)</script>",
    )
    .await;
    click(&browser, "form.hold button[type=submit]").await;
    let held = wait_text(&browser, "the held trip", |t| t.contains("held until")).await;
    assert!(
        held.contains("Passengers: <script>alert(1)</script>"),
        "the name is shown as typed: {held}"
    );
    assert!(
        browser.get_alert_text().await.is_err(),
        "the typed script ran"
    );
    let source = browser.source().await.expect("source");
    assert!(source.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // Declined: said plainly, still held, and payable again.
    click(&browser, "input[value=tok_declined]").await;
    click(&browser, "form.pay button[type=submit]").await;
    let declined = wait_text(&browser, "the decline", |t| t.contains("declined")).await;
    assert!(
        declined.contains("Your card was declined. Your seats are still held"),
        "{declined}"
    );
    assert!(
        declined.contains("held until"),
        "the hold stays: {declined}"
    );
    find(&browser, "p.error[role=alert]").await;
    screenshot(&browser, "declined").await;
    assert_eq!(
        app.seat_statuses(&flight)
            .await
            .get("2C")
            .map(String::as_str),
        Some("held")
    );

    // The bank does not answer: said as such, nothing charged, still held.
    click(&browser, "input[value=tok_timeout]").await;
    click(&browser, "form.pay button[type=submit]").await;
    let timeout = wait_text(&browser, "the timeout", |t| {
        t.contains("did not answer in time")
    })
    .await;
    assert!(timeout.contains("held until"), "{timeout}");

    // Someone else took a seat first: the hold form says so in words.
    let (_, other) = app.customer().await;
    let taken = other
        .place_order(
            &contrail_client::NewOrder {
                segments: vec![contrail_client::SegmentRequest::named(&flight, &["3A"])],
                passengers: vec![contrail_client::Passenger {
                    name: "Other".into(),
                }],
            },
            None,
        )
        .await;
    assert!(taken.is_ok(), "{taken:?}");
    browser
        .goto(&format!("{}/flights/{flight}", app.base))
        .await
        .expect("flight");
    // The page shows 3A held; a browser whose page was older would still offer it, so post it
    // as that browser would.
    let seat = find(&browser, "input#seat-3A").await;
    let seat = serde_json::to_value(&seat).expect("element");
    browser
        .execute(
            "arguments[0].disabled = false; arguments[0].checked = true;",
            vec![seat],
        )
        .await
        .expect("pick a taken seat");
    fill(&browser, "input[name=passenger]", "Mallory").await;
    click(&browser, "form.hold button[type=submit]").await;
    let refused = wait_text(&browser, "the refusal", |t| t.contains("just taken")).await;
    assert!(refused.contains("Please pick another"), "{refused}");

    // Signing out ends the session: "My trips" asks to sign in again.
    click(&browser, "header form[action='/signout'] button").await;
    find(&browser, "header a[href^='/signin']").await;
    browser
        .goto(&format!("{}/trips", app.base))
        .await
        .expect("trips");
    wait_text(&browser, "the sign-in page", |t| t.contains("Sign in")).await;
    assert_eq!(path(&browser).await, "/signin");
    let _ = browser.close().await;
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The sign-in page (and the CSRF cookie it sets).
async fn signin_page(http: &reqwest::Client, base: &str) -> reqwest::Response {
    http.get(format!("{base}/signin"))
        .send()
        .await
        .expect("the sign-in page")
}

/// A cookie's attributes as sent in `Set-Cookie` for `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of a cookie in a `Set-Cookie` text.
fn value(cookie: &str) -> &str {
    cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or("", |(_, v)| v)
}

/// The hidden CSRF field of a page.
fn csrf_field(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let length = page[start..].find('"').expect("the field's end");
    page[start..start + length].to_owned()
}

#[tokio::test]
async fn the_session_is_an_httponly_cookie_and_a_form_without_its_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let (_admin, flight) = app.one_flight(30, "ABCDEF").await;
    let http = no_redirects();

    // Every page: CSP without inline scripts, not framable, the CSRF cookie HttpOnly+Strict.
    let page = signin_page(&http, &app.base).await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let csrf_cookie = set_cookie(&page, "contrail_csrf").expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    let csrf = value(&csrf_cookie).to_owned();
    let body = page.text().await.expect("body");
    assert_eq!(csrf_field(&body), csrf);
    let cookie = |session: Option<&str>| match session {
        Some(s) => format!("contrail_csrf={csrf}; contrail_session={s}"),
        None => format!("contrail_csrf={csrf}"),
    };
    let post = |path: &str, cookies: String, form: Vec<(&str, String)>| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        http.post(format!("{}{path}", app.base))
            .header("cookie", cookies)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    // Sign in as the admin: an HttpOnly, SameSite=Strict session; `next` stays on this site.
    let signed = post(
        "/signin",
        cookie(None),
        vec![
            ("csrf", csrf.clone()),
            ("email", ADMIN_EMAIL.into()),
            ("password", ADMIN_PASSWORD.into()),
            ("next", "//evil.example/".into()),
        ],
    )
    .await
    .expect("signin");
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed.headers()[LOCATION], "/");
    let session_cookie = set_cookie(&signed, "contrail_session").expect("a session");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"));
    let session = value(&session_cookie).to_owned();
    // Signing in issues a new CSRF token: the old one is worthless now.
    let fresh = set_cookie(&signed, "contrail_csrf").expect("a new CSRF token");
    assert_ne!(value(&fresh), csrf);
    let old_csrf = csrf.clone();
    let csrf = value(&fresh).to_owned();
    let cookies = format!("contrail_csrf={csrf}; contrail_session={session}");

    // A state-changing form without the token, with another one, or with the one from before
    // the session: 403, nothing created.
    let airport = |token: Option<&str>| {
        let mut form = vec![
            ("code", "XSR".to_owned()),
            ("name", "Forged".to_owned()),
            ("city", "Forged".to_owned()),
            ("country", "Forged".to_owned()),
        ];
        if let Some(t) = token {
            form.push(("csrf", t.to_owned()));
        }
        form
    };
    for token in [None, Some("0".repeat(64).as_str()), Some(old_csrf.as_str())] {
        let forged = post("/admin/airports", cookies.clone(), airport(token))
            .await
            .expect("forged");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "token {token:?}");
        let text = forged.text().await.unwrap_or_default();
        assert!(text.contains("reload the page"), "{text}");
    }
    // A planted pair (cookie and field alike, as a sibling subdomain could set them) that was
    // issued to someone else (here: before signing in) fails for this session too.
    let planted = post(
        "/admin/airports",
        format!("contrail_csrf={old_csrf}; contrail_session={session}"),
        airport(Some(&old_csrf)),
    )
    .await
    .expect("planted");
    assert_eq!(planted.status(), StatusCode::FORBIDDEN);
    let airports = app.api().airports().await.expect("airports");
    assert!(
        airports.iter().all(|a| a.code != "XSR"),
        "a forged form changed the catalog"
    );
    let made = post("/admin/airports", cookies.clone(), airport(Some(&csrf)))
        .await
        .expect("airport");
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let airports = app.api().airports().await.expect("airports");
    assert!(airports.iter().any(|a| a.code == "XSR"));

    // A customer's session cannot use the console.
    let (_, _customer) = app.customer().await;
    // (Signed out, so with the token issued before signing in: the admin's is not valid here.)
    let cust = post(
        "/signup",
        format!("contrail_csrf={old_csrf}"),
        vec![
            ("csrf", old_csrf.clone()),
            ("email", "eve@example.com".into()),
            ("password", "eve-is-listening-42".into()),
            ("name", "Eve".into()),
        ],
    )
    .await
    .expect("signup");
    assert_eq!(cust.status(), StatusCode::SEE_OTHER);
    let eve = value(&set_cookie(&cust, "contrail_session").expect("session")).to_owned();
    let eve_csrf = value(&set_cookie(&cust, "contrail_csrf").expect("csrf")).to_owned();
    let denied = post(
        "/admin/airports",
        format!("contrail_csrf={eve_csrf}; contrail_session={eve}"),
        airport(Some(&eve_csrf)),
    )
    .await
    .expect("customer");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // The JSON API does not take the cookie: it keeps Bearer tokens.
    let me = http
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("cookie", cookies.clone())
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

    // A forged or expired session is simply signed out.
    let page = http
        .get(format!("{}/trips", app.base))
        .header("cookie", format!("contrail_session={session}x"))
        .send()
        .await
        .expect("trips");
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert!(
        page.headers()[LOCATION]
            .to_str()
            .unwrap_or_default()
            .starts_with("/signin?next=")
    );

    // An oversized form: 413 as a page; malformed escapes and unknown ids: pages, never 500.
    let big = post("/signin", cookie(None), vec![("email", "a".repeat(40_000))])
        .await
        .expect("big");
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    for path in [
        "/flights/flt_nope",
        "/trips/ord_nope",
        "/?origin=%ZZ&date=31-31-31",
    ] {
        let answer = http
            .get(format!("{}{path}", app.base))
            .header("cookie", cookies.clone())
            .send()
            .await
            .expect("page");
        assert!(
            answer.status().is_client_error(),
            "{path}: {}",
            answer.status()
        );
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
    }

    // A page's HTML stays small: the seat map of a 180-seat aircraft under 50 KB.
    let map = http
        .get(format!("{}/flights/{flight}?passengers=9", app.base))
        .send()
        .await
        .expect("flight page")
        .text()
        .await
        .expect("html");
    assert!(map.contains("seat-30F"));
    assert!(map.len() < 50 * 1024, "{} bytes", map.len());
}

/// A desktop browser signed in as the admin, on the console's first page.
async fn console(driver: &Driver, base: &str) -> fantoccini::Client {
    let admin = driver.browser(DESKTOP.0, DESKTOP.1).await;
    admin.goto(&format!("{base}/signin")).await.expect("signin");
    fill(&admin, "input[name=email]", ADMIN_EMAIL).await;
    fill(&admin, "input[name=password]", ADMIN_PASSWORD).await;
    click(&admin, "form.account button[type=submit]").await;
    click(&admin, "header a[href='/admin']").await;
    wait_text(&admin, "the traffic page", |t| {
        t.contains("Booking traffic")
    })
    .await;
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_builds_the_catalog_in_the_console_and_sees_a_killed_node_go_down() {
    let root = tempfile::tempdir().expect("root");
    let mut members = helpers::cluster::cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let base = members[0].app.base.clone();
    let driver = Driver::start().await;
    let admin = console(&driver, &base).await;
    screenshot(&admin, "console-traffic").await;

    // Airports, an aircraft with two cabins, a flight.
    admin
        .goto(&format!("{base}/admin/catalog"))
        .await
        .expect("catalog");
    for (code, city) in [("LHR", "London"), ("JFK", "New York")] {
        fill(&admin, "#new-airport input[name=code]", code).await;
        fill(
            &admin,
            "#new-airport input[name=name]",
            &format!("{city} airport"),
        )
        .await;
        fill(&admin, "#new-airport input[name=city]", city).await;
        fill(&admin, "#new-airport input[name=country]", "Somewhere").await;
        click(&admin, "#new-airport button[type=submit]").await;
        wait_text(&admin, "the new airport", |t| {
            t.contains(&format!("{city} airport"))
        })
        .await;
    }
    fill(&admin, "#new-aircraft input[name=model]", "B787").await;
    fill(
        &admin,
        "#new-aircraft textarea[name=layout]",
        "business 1-2 AC\neconomy 3-12 ABCDEF",
    )
    .await;
    click(&admin, "#new-aircraft button[type=submit]").await;
    wait_text(&admin, "the new aircraft", |t| t.contains("B787")).await;
    fill(&admin, "#new-flight input[name=flight_number]", "BA117").await;
    set_value(&admin, "#new-flight select[name=origin]", "LHR").await;
    set_value(&admin, "#new-flight select[name=destination]", "JFK").await;
    set_value(
        &admin,
        "#new-flight input[name=departs_at]",
        "2031-05-01T09:00",
    )
    .await;
    set_value(
        &admin,
        "#new-flight input[name=arrives_at]",
        "2031-05-01T17:05",
    )
    .await;
    fill(&admin, "#new-flight input[name=fare_economy]", "450").await;
    fill(&admin, "#new-flight input[name=fare_business]", "2100.50").await;
    click(&admin, "#new-flight button[type=submit]").await;
    let catalog = wait_text(&admin, "the new flight", |t| t.contains("BA117")).await;
    assert!(catalog.contains("LHR → JFK"), "{catalog}");
    screenshot(&admin, "console-catalog").await;

    // A traveller finds it (through another node).
    let other = members[1].app.base.clone();
    admin
        .goto(&format!("{other}/?origin=LHR&destination=JFK"))
        .await
        .expect("search");
    let found = wait_text(&admin, "the flight in search", |t| t.contains("BA117")).await;
    assert!(
        found.contains("8h 05m") && found.contains("USD 450.00"),
        "{found}"
    );

    // A customer books it through node-b; the airline cancels it in the console: the cascade
    // (the order cancelled and refunded) is shown.
    let link = find(&admin, "main a[href^='/flights/flt_']").await;
    let href = link.attr("href").await.ok().flatten().unwrap_or_default();
    let flight_id = href
        .trim_start_matches("/flights/")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (_, customer) = members[1].app.customer().await;
    let order = customer
        .place_order(&helpers::economy(&[&flight_id], 1), None)
        .await
        .expect("a booking on BA117");
    customer
        .pay(&order.order.id, "tok_visa", None)
        .await
        .expect("paid");
    admin
        .goto(&format!("{base}/admin/catalog"))
        .await
        .expect("catalog");
    click(&admin, "form[action$='/cancel'] button[type=submit]").await;
    admin.accept_alert().await.expect("the confirmation");
    let cancelled = wait_text(&admin, "the cascade", |t| t.contains("Flight cancelled")).await;
    assert!(
        cancelled.contains("1 order(s) on it cancelled"),
        "{cancelled}"
    );
    let refunded = customer.order(&order.order.id).await.expect("the order");
    assert_eq!(refunded.status, "refunded");

    // The cluster view: three members up; node-c killed shows as down without a reload.
    admin
        .goto(&format!("{base}/admin/cluster"))
        .await
        .expect("cluster");
    let view = wait_text(&admin, "three members", |t| t.matches(" up").count() >= 3).await;
    for node in ["node-a", "node-b", "node-c"] {
        assert!(view.contains(node), "{view}");
    }
    screenshot(&admin, "console-cluster").await;
    admin
        .goto(&format!("{base}/admin/outbox"))
        .await
        .expect("outbox");
    let outbox = wait_text(&admin, "the outbox", |t| t.contains("Notification outbox")).await;
    assert!(outbox.contains("No deliveries"), "{outbox}");
    admin
        .goto(&format!("{base}/admin/cluster"))
        .await
        .expect("cluster");
    members[2].kill9();
    let down = "tr[data-node=node-c] [data-status]";
    wait_class(&admin, down, "down").await;
    assert_eq!(
        find(&admin, down).await.text().await.unwrap_or_default(),
        "down"
    );
    wait_class(&admin, "tr[data-node=node-a] [data-status]", "up").await;
    screenshot(&admin, "console-cluster-node-down").await;

    // With a member down the outbox cannot be listed in full, and the page says so.
    admin
        .goto(&format!("{base}/admin/outbox"))
        .await
        .expect("outbox");
    wait_text(&admin, "the outbox", |t| {
        t.contains("cannot be listed in full")
    })
    .await;
    let _ = admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_removes_a_dead_node_of_a_replicated_cluster_in_the_console() {
    let root = tempfile::tempdir().expect("root");
    let names = ["node-a", "node-b", "node-c"];
    let mut members = helpers::cluster::cluster(root.path(), &names).await;
    let base = members[0].app.base.clone();
    let driver = Driver::start().await;
    let admin = console(&driver, &base).await;

    // Every member up: each can be drained, none removed.
    admin
        .goto(&format!("{base}/admin/cluster"))
        .await
        .expect("cluster");
    wait_text(&admin, "three members", |t| t.matches(" up").count() >= 3).await;
    let remove = "form[action='/admin/cluster/remove'] button";
    assert!(admin.find(Locator::Css(remove)).await.is_err());

    // node-c dies for good: once it shows as down (after a reload) it can be removed.
    members[2].kill9();
    std::fs::remove_dir_all(&members[2].data).expect("node-c's data");
    let shown = helpers::eventually(std::time::Duration::from_secs(30), || async {
        admin.goto(&format!("{base}/admin/cluster")).await.is_ok()
            && admin.find(Locator::Css(remove)).await.is_ok()
    })
    .await;
    assert!(shown, "no Remove button for the dead node");
    screenshot(&admin, "console-cluster-remove").await;
    click(&admin, remove).await;
    admin.accept_alert().await.expect("the confirmation");
    let after = wait_text(&admin, "two members", |t| !t.contains("node-c")).await;
    assert!(
        after.contains("node-a") && after.contains("node-b"),
        "{after}"
    );
    // As a client honouring Retry-After: the removal moves partitions between leaders.
    let api = members[0].app.admin().await;
    let mut view = api.cluster().await;
    for _ in 0..60 {
        match &view {
            Err(e) if e.status() == Some(reqwest::StatusCode::SERVICE_UNAVAILABLE) => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                view = api.cluster().await;
            }
            _ => break,
        }
    }
    let view = view.expect("view");
    assert_eq!(view.members.len(), 2, "{:?}", view.members);
    let _ = admin.close().await;
}

#[tokio::test]
async fn behind_an_https_proxy_the_cookies_are_secure() {
    let app = helpers::spawn_app_with(|s| s.http.secure_cookies = true).await;
    let page = signin_page(&reqwest::Client::new(), &app.base).await;
    let csrf = set_cookie(&page, "contrail_csrf").expect("a CSRF cookie");
    assert!(csrf.ends_with("; Secure"), "{csrf}");
}

#[tokio::test]
async fn too_many_page_requests_are_told_to_wait_in_words_with_retry_after() {
    let app = helpers::spawn_app_with(|s| {
        s.http.anonymous_rps = 1;
        s.http.anonymous_burst = 3;
    })
    .await;
    let http = reqwest::Client::new();
    let mut refused = None;
    for _ in 0..20 {
        let page = http
            .get(format!("{}/", app.base))
            .send()
            .await
            .expect("page");
        if page.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(page);
            break;
        }
        assert_eq!(page.status(), StatusCode::OK);
    }
    let refused = refused.expect("the limit answers 429 within 20 requests");
    assert!(refused.headers().contains_key("retry-after"));
    let kind = refused.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    let text = refused.text().await.unwrap_or_default();
    assert!(text.contains("Too many requests. Please wait"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_seat_maps_are_bounded_per_client_and_unknown_flights_are_not_watched() {
    let app = spawn_app().await;
    let (_admin, flight) = app.one_flight(4, "ABCD").await;
    let http = reqwest::Client::new();
    let open = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.expect("stream") }
    };

    // An unknown flight: 404 (EventSource stops for good), no reader started.
    let unknown = open(format!("{}/flights/flt_nope/seats/live", app.base)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // One address may keep 32 streams open; the 33rd is refused with 503, not queued.
    let live = format!("{}/flights/{flight}/seats/live", app.base);
    let mut streams = Vec::new();
    for _ in 0..32 {
        let stream = open(live.clone()).await;
        assert_eq!(stream.status(), StatusCode::OK);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        streams.push(stream);
    }
    let refused = open(live.clone()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Each open stream got the map; closing them frees the slots.
    let mut first = streams.pop().expect("a stream");
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), first.chunk())
        .await
        .expect("an event within 10 s")
        .expect("readable")
        .expect("a chunk");
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.contains("event:seats") || text.contains("event: seats"),
        "{text}"
    );
    assert!(text.contains("\"1A\":\"available\""), "{text}");
    drop(first);
    drop(streams);
    let again = helpers::eventually(std::time::Duration::from_secs(10), || async {
        open(live.clone()).await.status() == StatusCode::OK
    })
    .await;
    assert!(again, "closed streams did not free their slots");
}

#[tokio::test]
async fn a_chunked_form_is_read_like_any_other_and_an_endless_one_is_refused() {
    let app = spawn_app().await;
    let http = no_redirects();
    let page = signin_page(&http, &app.base).await;
    let csrf = value(&set_cookie(&page, "contrail_csrf").expect("csrf")).to_owned();
    let form = format!("csrf={csrf}&email=nobody%40example.com&password=wrong-password-1");
    let (status, _) = chunked_post(&app.base, "/signin", &csrf, &form).await;
    assert_eq!(status, 401, "read and answered");
    let huge = format!("csrf={csrf}&email={}", "a".repeat(100_000));
    let (status, kind) = chunked_post(&app.base, "/signin", &csrf, &huge).await;
    assert_eq!(status, 413);
    assert!(kind.starts_with("text/html"), "{kind}");
}

/// POSTs `form` with `Transfer-Encoding: chunked` (no length) over a raw connection; the
/// answer's status and content type.
async fn chunked_post(base: &str, path: &str, csrf: &str, form: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncookie: contrail_csrf={csrf}\r\n\
         content-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n"
    );
    for chunk in form.as_bytes().chunks(1000) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer (413) before reading everything: a failed write is fine then.
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let kind = answer
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (status, kind)
}
