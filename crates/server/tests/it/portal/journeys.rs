//! Each role's journey in the browser, in the order the work flows: the researcher applies,
//! the chair assigns, the committee votes and the chair approves, the researcher accepts,
//! queries and asks for release, two checkers approve, the custodian builds and publishes a
//! dataset and verifies the audit, the analyst requests and downloads it, the administrator
//! sees the accounts. A screenshot of every screen, axe-core in each.

#![allow(clippy::unwrap_used)]

use super::browser::Browser;
use super::portal_server;
use crate::support::repo;

fn example_form() -> niji_governance::ApplicationForm {
    let text = std::fs::read_to_string(repo().join("sandbox/examples/application.toml")).unwrap();
    niji_governance::ApplicationForm::from_toml(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_does_its_part_in_a_real_browser() {
    let server = portal_server().await;
    let b = Browser::start(format!("http://{}", server.http)).await;

    // Anyone: the catalog (searched as one types) and the dashboard.
    b.go("/").await;
    b.check("home").await;
    b.go("/catalog").await;
    b.fill("#q", "sex").await;
    let shown = b.wait_text("#shown").await;
    assert!(!shown.is_empty());
    b.check("catalog").await;

    b.go("/signin").await;
    b.check("signin").await;

    // The researcher applies.
    b.sign_in("alice").await;
    b.go("/account").await;
    b.check("account").await;
    let form = example_form();
    b.go("/applications/new").await;
    b.fill("#project_id", "copay-followup").await;
    b.fill("#title", &form.title).await;
    b.fill("#purpose", &form.purpose).await;
    b.fill("#organisation", "u-tokyo").await;
    let tables: Vec<String> = form
        .tables
        .iter()
        .map(|t| format!("{}: {}", t.table, t.columns.join(", ")))
        .collect();
    b.fill("#tables", &tables.join("\n")).await;
    let analysts: Vec<String> = form
        .analysts
        .iter()
        .map(|a| format!("{} {}", a.user, a.role.as_str()))
        .collect();
    b.fill("#analysts", &analysts.join("\n")).await;
    if let Some(p) = &form.period {
        b.fill("#period_from", &p.from).await;
        b.fill("#period_to", &p.to).await;
    }
    b.fill("#duration_months", &form.duration_months.to_string())
        .await;
    b.check("application-form").await;
    b.submit("form.stack button.primary").await;
    let at = b.path().await;
    assert!(at.starts_with("/applications/"), "{at}");
    b.check("application-draft").await;
    b.submit("form[action$='/submit'] button").await;
    let id = at.trim_start_matches("/applications/").to_string();
    b.go("/applications").await;
    b.check("applications").await;

    // The chair assigns a member per database.
    b.sign_in("frank").await;
    b.go("/review").await;
    b.check("review-queue").await;
    for (reviewer, db) in [("dora", "ndb"), ("erin", "kaigo")] {
        b.go(&format!("/applications/{id}")).await;
        b.c.find(fantoccini::Locator::Css("#reviewer"))
            .await
            .unwrap()
            .select_by_value(reviewer)
            .await
            .unwrap();
        b.fill("#databases", db).await;
        b.submit("form[action$='/assign'] button").await;
    }
    b.check("review-application").await;
    // Members vote.
    for member in ["dora", "erin"] {
        b.sign_in(member).await;
        b.go(&format!("/applications/{id}")).await;
        b.fill("#comment", "公益性が高く、識別のおそれは低い").await;
        b.submit("form[action$='/vote'] button").await;
    }
    // The chair signs the decision.
    b.sign_in("frank").await;
    b.go(&format!("/applications/{id}")).await;
    b.fill("#notes", "公表前に成果物審査を受けること").await;
    b.fill("#decision-reason", "公益性が認められる").await;
    b.submit("form[action$='/decide'] button").await;
    b.check("review-decided").await;

    // The researcher accepts and works in the project.
    b.sign_in("alice").await;
    b.go(&format!("/applications/{id}")).await;
    b.submit("form[action$='/accept'] button").await;
    assert_eq!(b.path().await, "/projects/copay-followup");
    b.go("/projects").await;
    b.check("projects").await;
    b.go("/projects/copay-followup").await;
    b.fill(
        "#sql",
        "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex ORDER BY sex",
    )
    .await;
    b.click("#run").await;
    let dummy = b.wait_text("#results .result").await;
    assert!(!dummy.is_empty());
    // Real data: an aggregate is released with what it masks; rows are held for checkers.
    b.click("input[value=real]").await;
    b.click("#run").await;
    b.c.wait()
        .for_element(fantoccini::Locator::Css("#results .outcome:nth-child(2)"))
        .await
        .unwrap();
    b.check("console-released").await;
    // Rows stay inside; small cells are masked, and judgement may release them.
    b.fill("#sql", "SELECT pid, days FROM ndb.receipts LIMIT 3")
        .await;
    b.click("#run").await;
    b.c.wait()
        .for_element(fantoccini::Locator::Css("#results .outcome:nth-child(3)"))
        .await
        .unwrap();
    b.fill(
        "#sql",
        "SELECT sex, count(*) AS receipts FROM ndb.receipts GROUP BY sex ORDER BY sex",
    )
    .await;
    b.click("#run").await;
    b.c.wait()
        .for_element(fantoccini::Locator::Css("#results .outcome:nth-child(4)"))
        .await
        .unwrap();
    let newest = b.text("#results .outcome:first-child .result").await;
    assert!(
        newest.contains("秘匿"),
        "cells on too few facilities are masked: {newest}"
    );
    b.check("console").await;
    b.fill(
        "#results .outcome:first-child form.request textarea",
        "性別の受診件数を論文の表1に掲載するため",
    )
    .await;
    b.submit("#results .outcome:first-child form.request button")
        .await;
    let output = b.path().await;
    assert!(output.starts_with("/outputs/"), "{output}");
    b.check("output-requested").await;
    b.go("/projects/copay-followup/audit").await;
    let trail = b.text("main").await;
    assert!(
        trail.contains("query"),
        "the project's own trail lists its queries"
    );
    b.check("project-trail").await;

    // Two checkers approve.
    for checker in ["kenji", "kaori"] {
        b.sign_in(checker).await;
        b.go("/outputs").await;
        if checker == "kenji" {
            b.check("outputs-queue").await;
        }
        b.go(&output).await;
        if checker == "kenji" {
            b.check("output-check").await;
        }
        b.fill("#reason", "集計値のみで最小セル人数を満たす").await;
        b.submit("form[action$='/vote'] button").await;
    }
    let out_id = output.trim_start_matches("/outputs/");
    let stored = server
        .visiting
        .platform()
        .db()
        .output(out_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::to_value(stored.review).unwrap(), "released");

    // The custodian builds, opens and publishes a dataset, and verifies the audit log.
    b.sign_in("kumi").await;
    b.go("/datasets").await;
    b.submit("form[action='/datasets/incidence/build'] button")
        .await;
    b.submit("form[action='/datasets/incidence/open'] button")
        .await;
    b.submit("form[action='/datasets/incidence/publish'] button")
        .await;
    b.c.find(fantoccini::Locator::Css("#approve-org"))
        .await
        .unwrap()
        .select_by_value("pharma-a")
        .await
        .unwrap();
    b.submit("form[action='/datasets/organisations'] button")
        .await;
    b.check("datasets-custodian").await;
    b.go("/audit").await;
    b.click("#verify").await;
    let verified = b.wait_text("#verified").await;
    assert!(verified.contains("改ざんはありません"), "{verified}");
    b.check("audit").await;
    b.go("/admin").await;
    b.check("admin").await;

    // The public dashboard draws what was published.
    b.go("/dashboard").await;
    b.c.find(fantoccini::Locator::Css(".chart svg"))
        .await
        .unwrap();
    b.check("dashboard").await;

    // The analyst requests the open dataset and downloads it.
    b.sign_in("hana").await;
    b.go("/datasets").await;
    b.c.find(fantoccini::Locator::Css("#dataset"))
        .await
        .unwrap()
        .select_by_value("incidence")
        .await
        .unwrap();
    b.fill(
        "#ds-purpose",
        "希少疾患の新規認定数の地域差を把握し、治験の実施可能性を評価するため",
    )
    .await;
    b.fill(
        "#ds-interest",
        "希少疾患の治療法の開発を早め、患者とその家族に資するため",
    )
    .await;
    b.click("input[name=pledge]").await;
    b.submit("form[action='/datasets/requests'] button").await;
    let status = b
        .c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/datasets/incidence/file?format=csv').then(r => r.text().then(t => done([r.status, t.split('\\n')[0]])));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status[0], 200, "{status}");
    b.fill("#disease_no", "1").await;
    b.click("form[hx-post='/f/datasets/count'] button").await;
    b.wait_text("#count .flash").await;
    b.check("datasets-analyst").await;

    // English on request.
    b.go("/lang?to=en&back=/catalog").await;
    assert_eq!(b.text("h1").await, "Data catalog");
    b.check("catalog-en").await;

    b.close().await;
    server.stop().await;
}
