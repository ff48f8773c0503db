//! The browser and the stack the end-to-end tests drive: Debian's Chromium, headless, over
//! WebDriver (chromedriver), and `coursedrop-dev serve` on a fresh database with its own
//! ports and queues.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// One whole stack at a time: each of these tests runs every function, the deliver job and
/// its emulators, and on two cores three side by side starve each other's timeouts.
pub static ONE_STACK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Kills the child when the test ends, pass or fail.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills the child and every process it started (chromedriver's Chromium) when the test
/// ends, pass or fail: the child leads a process group of its own.
pub struct KilledGroup(pub Child);

impl Drop for KilledGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.0.id())).status();
        let _ = self.0.wait();
    }
}

pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: KilledGroup,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; `devtools/services up` installs it)");
        let driver = KilledGroup(driver);
        let http = coursedrop::support::http_client::client_builder().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            // A phone-sized window: the page must work there.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915"]
        }}}});
        let created: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        Browser { http, session: format!("{base}/session/{id}"), _driver: driver }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn script(&self, js: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": js, "args": []}))).await
    }

    /// Runs `js` until it returns something truthy, or fails after `secs`.
    pub async fn wait_for(&self, what: &str, js: &str, secs: u64) -> Value {
        let started = Instant::now();
        loop {
            let v = self.script(js).await;
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            if started.elapsed() > Duration::from_secs(secs) {
                let page = self.script("return location.href + '\\n' + document.body.innerText").await;
                panic!("timed out waiting for {what}; the page shows:\n{}", page.as_str().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Sets the window's size: 412×915 is a phone, 1280×900 a laptop.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Saves the page as `target/artifacts/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let dir = workspace().join("target/artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// `coursedrop-dev serve` on a fresh database and its own ports and queues.
/// The running stack: the API's and the console's addresses, its database, the Drive
/// emulator's port, and the console's owner (an address of this run only).
pub struct Stack {
    pub _child: Killed,
    pub base: String,
    pub db: String,
    pub drive_port: u16,
    /// The bank emulator: SePay, Casso and payOS.
    pub bank_port: u16,
    pub console: String,
    pub owner: String,
}

pub async fn stack() -> Stack {
    let base_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/coursedrop".into());
    let (server, _) = base_url.rsplit_once('/').unwrap();
    let db = format!("coursedrop_browser_{}", rand::random::<u32>());
    // Every port its own: the tests run side by side, each with a stack.
    let (port, drive_port, console_port, bank_port) = (free_port(), free_port(), free_port(), free_port());
    let owner = format!("owner.{}@example.com", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&base_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4")))
        .execute(&admin)
        .await
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_coursedrop-dev"))
        .arg("serve")
        .current_dir(workspace())
        .env("DATABASE_URL", format!("{server}/{db}"))
        .env("PORT", port.to_string())
        .env("DRIVE_EMULATOR_PORT", drive_port.to_string())
        .env("CONSOLE_PORT", console_port.to_string())
        .env("BANK_EMULATOR_PORT", bank_port.to_string())
        .env("CONSOLE_OWNER", &owner)
        .env("QUEUE_NAME_PREFIX", format!("browser-{}-", rand::random::<u32>()))
        .env("SEPAY_API_KEY", "browser-test-key")
        .env("SELLER_NAME", "Học Rust cùng Lan")
        .env("SUPPORT_ZALO", "0912345678")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(r) = coursedrop::support::http_client::client_builder()
            .build()
            .unwrap()
            .get(format!("{base}/courses"))
            .send()
            .await
            && r.status().is_success()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the dev stack did not come up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Stack { _child: child, base, db, drive_port, bank_port, console: format!("http://127.0.0.1:{console_port}"), owner }
}
