//! A headless Chromium driven over WebDriver: chromedriver started on a free loopback port
//! for the test and stopped with it; screenshots into docs/screenshots/; axe-core (vendored)
//! run in each screen.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::support::repo;

pub struct Browser {
    pub c: Client,
    base: String,
    driver: Child,
    shots: PathBuf,
}

const AXE: &str = include_str!("../vendor/axe.min.js");

impl Browser {
    pub async fn start(base: String) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/setup-browser.sh installs it)");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), serde_json::json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=ja"]
            }),
        );
        let mut last = None;
        for _ in 0..50 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    let shots = repo().join("docs/screenshots");
                    std::fs::create_dir_all(&shots).unwrap();
                    return Browser {
                        c,
                        base,
                        driver,
                        shots,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    pub async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks a form's button and waits for the page the post answers with (a new document,
    /// loaded), whatever its address.
    pub async fn submit(&self, css: &str) {
        self.c
            .execute("window.nijiOld = true; return true;", vec![])
            .await
            .unwrap();
        self.click(css).await;
        for _ in 0..200 {
            let state = self
                .c
                .execute(
                    "return (window.nijiOld ? 'old' : '') + document.readyState",
                    vec![],
                )
                .await
                .ok();
            if state.as_ref().and_then(|r| r.as_str()) == Some("complete") {
                let title = self.c.title().await.unwrap_or_default();
                let refused = title
                    .split(' ')
                    .next()
                    .is_some_and(|w| w.len() == 3 && w.parse::<u16>().is_ok());
                if refused {
                    let body = self.text("main").await;
                    panic!("{css} was answered with {title}: {body}");
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no page came after {css}");
    }

    pub async fn text(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits for `css` (an htmx swap) and gives its text.
    pub async fn wait_text(&self, css: &str) -> String {
        let e = self
            .c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.text().await.unwrap()
    }

    pub async fn path(&self) -> String {
        let url = self.c.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    pub async fn sign_in(&self, user: &str) {
        self.c.delete_all_cookies().await.ok();
        self.go("/signin").await;
        self.fill("#user", user).await;
        self.fill("#password", super::PASSWORD).await;
        self.submit("form.stack button[type=submit]").await;
        // The sign-in page has the same header: wait for the page after it.
        for _ in 0..100 {
            if self.path().await != "/signin" {
                let who = self.wait_text("header .who a").await;
                if who == user {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{user} did not sign in (at {})", self.path().await);
    }

    /// Saves the screen as docs/screenshots/<name>.png and fails on any serious or critical
    /// accessibility violation axe-core finds in it.
    pub async fn check(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        self.c
            .execute(&format!("{AXE}\n;return true;"), vec![])
            .await
            .unwrap();
        let found = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                      .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .unwrap();
        let violations: Vec<String> = serde_json::from_value(found).unwrap();
        assert!(violations.is_empty(), "{name}: {violations:#?}");
    }

    pub async fn close(mut self) {
        let _ = self.c.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
