//! The API description is a contract: `openapi-spec-validator` accepts `/openapi.json`, and
//! schemathesis, generating requests from it (examples, boundary values, fuzzing, stateful
//! sequences through the links it infers, every check), finds no request the node answers
//! differently from what the document says: no 5xx, no undocumented status, no body or header
//! off its schema, nothing invalid accepted, nothing valid refused (except where
//! `tests/schemathesis.toml` says why a rule spans several fields).
//!
//! The Python tools are pinned in `tests/python-tools.txt` and live in a virtualenv in
//! `target/python-tools`, which this test makes on first use (`python3` with `venv` and the
//! package registry; `.ci/run` makes it beforehand).

mod helpers;

use helpers::{book, spawn_app_with};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How many cases schemathesis generates per operation and phase: enough to walk every
/// parameter's boundaries, small enough for CI (about half a minute on two cores).
const EXAMPLES_PER_OPERATION: &str = "25";
/// The whole run may not take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `bin` directory of a virtualenv in `target/python-tools` holding exactly the pinned
/// tools, made or updated on first use (a stamp records which requirements it holds).
fn tools() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let venv = repo().join("target").join("python-tools");
            let bin = venv.join("bin");
            let requirements = repo().join("tests").join("python-tools.txt");
            let wanted = std::fs::read_to_string(&requirements).expect("tests/python-tools.txt");
            let stamp = venv.join("installed.txt");
            if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
                if !bin.join("pip").is_file() {
                    run_setup("python3", &["-m", "venv", &venv.to_string_lossy()]);
                }
                let pip = bin.join("pip");
                let requirements = requirements.to_string_lossy();
                run_setup(
                    &pip.to_string_lossy(),
                    &["install", "--quiet", "-r", &requirements],
                );
                std::fs::write(&stamp, &wanted).expect("write the stamp");
            }
            bin
        })
        .clone()
}

fn run_setup(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e} (install python3 with venv, or run .ci/run)"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Runs a tool to completion within [`RUN_LIMIT`]; its exit status and everything it printed.
async fn run(tool: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    // In a directory of its own: schemathesis keeps a cache in its working directory.
    let workdir = tempfile::tempdir().expect("a working directory");
    let child = tokio::process::Command::new(tool)
        .args(args)
        .current_dir(workdir.path())
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} ran longer than {RUN_LIMIT:?}", tool.display()))
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_validates() {
    let tools = tools();
    let app = spawn_app_with(|_| {}).await;
    let document = app.get("/openapi.json", None).await;
    assert_eq!(document.status, 200);
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, document.body.to_string()).expect("write the document");
    let (ok, report) = run(
        &tools.join("openapi-spec-validator"),
        &[&file.to_string_lossy()],
        &[],
    )
    .await;
    assert!(ok, "openapi-spec-validator refused the document:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_mismatch_between_the_document_and_the_node() {
    let tools = tools();
    // Limits high enough that the generated traffic is answered, not rate limited (429 is
    // documented, so it would pass, but it would test nothing).
    let app = spawn_app_with(|s| {
        s.http.user_rps = 100_000;
        s.http.user_burst = 100_000;
        s.http.signin_failures_per_minute = 100_000;
        s.http.signin_failures_per_address_per_minute = 100_000;
    })
    .await;
    let token = app.admin_token().await;
    // Real records for the operations on one entity (tests/schemathesis.toml names them by
    // these variables), so that their cases reach past the 404 of an unknown id: a flight, a
    // customer, a paid order with its ticket and a held order.
    let (_, flight) = app.one_flight(10, "ABCD").await;
    let (customer_id, customer) = app.customer().await;
    let paid = book(&customer, &[&flight], 1).await;
    let paid = customer
        .pay(&paid.id, "tok_visa", None)
        .await
        .expect("paid");
    let held = book(&customer, &[&flight], 1).await;
    let ticket = paid.tickets[0].id.clone();
    let records = [
        ("CONTRAIL_FLIGHT", flight.as_str()),
        ("CONTRAIL_USER", customer_id.as_str()),
        ("CONTRAIL_ORDER", held.id.as_str()),
        ("CONTRAIL_TICKET", ticket.as_str()),
    ];
    let schema = format!("{}/openapi.json", app.base);
    let config = repo().join("tests").join("schemathesis.toml");
    let report = app.dir.path().join("schemathesis");
    let header = format!("Authorization: Bearer {token}");
    // A fixed seed makes a failure reproducible; CONTRAIL_SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("CONTRAIL_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let (ok, output) = run(
        &tools.join("schemathesis"),
        &[
            "--config-file",
            &config.to_string_lossy(),
            "run",
            &schema,
            "--header",
            &header,
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            "--seed",
            &seed,
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--report-dir",
            &report.to_string_lossy(),
            "--no-color",
        ],
        &records,
    )
    .await;
    assert!(ok, "schemathesis found mismatches (seed {seed}):\n{output}");
    // The run must have reached every operation, or a broken document could pass by having none.
    let operations = app.get("/openapi.json", None).await.body["paths"]
        .as_object()
        .map(|paths| {
            paths
                .values()
                .filter_map(|item| item.as_object())
                .map(|item| item.len())
                .sum::<usize>()
        })
        .unwrap_or(0);
    assert!(
        operations >= 29,
        "the document lists {operations} operations"
    );
    // schemathesis leaves out the document's own operation, `GET /openapi.json`.
    let tested = operations - 1;
    assert!(
        output.contains(&format!("Tested: {tested}")),
        "schemathesis did not test all {tested} operations:\n{output}"
    );
}
