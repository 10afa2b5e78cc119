//! Every loadgen scenario, briefly and bounded, against a real node; the audit must pass.

mod helpers;

use contrail_loadgen::{LoadgenArgs, Scenario, run};
use helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app};

fn args(base: &str, scenario: Scenario, out: &std::path::Path) -> LoadgenArgs {
    LoadgenArgs {
        scenario,
        targets: vec![base.to_owned()],
        users: 8,
        duration_secs: 2,
        requests: Some(400),
        seed: 7,
        flights: 3,
        seats: 12,
        decline_rate: 0.2,
        abandon_rate: 0.2,
        rush_accounts: 5,
        admin_email: ADMIN_EMAIL.into(),
        admin_password: ADMIN_PASSWORD.into(),
        out: out.join(format!("{scenario:?}.json")),
        plot: out.join(format!("{scenario:?}.svg")),
        no_audit: false,
        quiet: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_passes_its_audit() {
    let app = spawn_app().await;
    let out = tempfile::tempdir().expect("dir");
    for scenario in [Scenario::Baseline, Scenario::Browse, Scenario::Book] {
        let report = run(args(&app.base, scenario, out.path()))
            .await
            .expect("run");
        assert!(report.requests > 0, "{scenario:?} sent nothing");
        assert!(
            report.requests <= 400,
            "{scenario:?} ignored its request bound"
        );
        assert!(report.passed(), "{scenario:?}: {:?}", report.audit);
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.path().join(format!("{scenario:?}.json"))).expect("json file"),
        )
        .expect("json");
        assert_eq!(json["requests"], report.requests);
        let svg =
            std::fs::read_to_string(out.path().join(format!("{scenario:?}.svg"))).expect("plot");
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "no plot drawn"
        );
    }
    let book = run(args(&app.base, Scenario::Book, out.path()))
        .await
        .expect("book");
    let audit = book.audit.expect("book is audited");
    assert_eq!(audit.checks.len(), 4);

    let mut rush = args(&app.base, Scenario::Rush, out.path());
    rush.users = 60;
    let report = run(rush).await.expect("rush");
    let r = report.rush.clone().expect("rush figures");
    assert_eq!(r.buyers, 60);
    assert_eq!(r.holds, 12, "a 12-seat flight granted {} holds", r.holds);
    assert_eq!(r.answered, 60);
    assert!(report.passed(), "{:?}", report.audit);
}
