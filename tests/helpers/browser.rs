//! Headless Chromium driven over WebDriver: the distribution's `chromedriver` (started here on a
//! free loopback port, ended by its PID when dropped) and `chromium`.
#![allow(unreachable_pub)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// One chromedriver; each [`Driver::browser`] is a browser of its own (own profile, cookies).
pub struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver (the `CHROMEDRIVER` variable names another binary).
    pub async fn start() -> Self {
        let port = super::binary::free_port();
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} must be installed for the browser tests (apt-get install chromium-driver): {e}")
            });
        let url = format!("http://127.0.0.1:{port}");
        let ready = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < ready,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            url,
            profiles: tempfile::tempdir().expect("profile dir"),
        }
    }

    /// A new headless browser window of `width`×`height` CSS pixels.
    pub async fn browser(&self, width: u32, height: u32) -> Client {
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("profile");
        let profile = profile.keep();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        let client = ClientBuilder::rustls()
            .expect("tls roots")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session");
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ours, by PID: chromedriver ends the browsers it started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The element `css`, once it is on the page.
pub async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!("no {css} on {}: {e}", here(browser).await),
    }
}

/// Waits until `check` holds for the page's text (the `main` element), and returns that text.
pub async fn wait_text(browser: &Client, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = match browser.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if check(&text) {
            return text;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("waited for {what}; {} says:\n{text}", here(browser).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the element `css` has `class`.
pub async fn wait_class(browser: &Client, css: &str, class: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let classes = match browser.find(Locator::Css(css)).await {
            Ok(e) => e.attr("class").await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        };
        if classes.split_whitespace().any(|c| c == class) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} never became {class} (is {classes:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Types `text` into the field `css` (cleared first).
pub async fn fill(browser: &Client, css: &str, text: &str) {
    let field = find(browser, css).await;
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Sets a field's value directly (date and time pickers do not take typed text portably).
pub async fn set_value(browser: &Client, css: &str, value: &str) {
    let field = find(browser, css).await;
    let field = serde_json::to_value(&field).expect("element reference");
    browser
        .execute(
            "arguments[0].value = arguments[1];",
            vec![field, serde_json::Value::String(value.to_owned())],
        )
        .await
        .expect("set value");
}

/// Clicks the element `css`.
pub async fn click(browser: &Client, css: &str) {
    find(browser, css).await.click().await.expect("click");
}

/// The page's address.
pub async fn path(browser: &Client) -> String {
    browser
        .current_url()
        .await
        .map(|u| u.path().to_owned())
        .unwrap_or_default()
}

/// The page's full address, for messages.
async fn here(browser: &Client) -> String {
    browser
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_else(|e| format!("(unknown page: {e})"))
}

/// Takes a screenshot into `docs/screenshots/NAME.png` and checks it is not blank: a page with
/// content has many colours, a blank one one or two.
pub async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let channels = frame.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> =
        pixels[..frame.buffer_size()].chunks(channels).collect();
    assert!(
        colours.len() > 16,
        "screenshot {name} is blank ({} colours)",
        colours.len()
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
    std::fs::create_dir_all(dir).expect("screenshot dir");
    std::fs::write(format!("{dir}/{name}.png"), &png).expect("screenshot written");
}
