//! The emulator over real HTTP on port 0: the protocol behaviours the Drive client relies on.

use base64::Engine;
use drive_emulator::{CHUNK_GRANULE, FOLDER_MIME, Faults, TempEmulator};
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Drive {
    http: reqwest::Client,
    running: TempEmulator,
}

async fn drive() -> Drive {
    let running = TempEmulator::start("drive-emu-test").await.unwrap();
    Drive { http: coursedrop::support::http_client::client_builder().build().unwrap(), running }
}

impl Drive {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.running.base)).bearer_auth("emulator-token")
    }

    async fn folder(&self, name: &str, parent: &str) -> String {
        let v: Value = self
            .req(reqwest::Method::POST, "/drive/v3/files")
            .json(&json!({"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    async fn start(&self, name: &str, parent: &str, total: Option<u64>) -> String {
        let mut r = self
            .req(
                reqwest::Method::POST,
                "/upload/drive/v3/files?uploadType=resumable&fields=id,name,size,md5Checksum,parents",
            )
            .json(&json!({"name": name, "parents": [parent]}));
        if let Some(t) = total {
            r = r.header("x-upload-content-length", t);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.headers()["location"].to_str().unwrap().to_string()
    }

    async fn put(&self, session: &str, range: &str, body: Vec<u8>) -> Result<reqwest::Response, reqwest::Error> {
        self.http.put(session).bearer_auth("emulator-token").header("content-range", range).body(body).send().await
    }
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn range_header(r: &reqwest::Response) -> Option<String> {
    r.headers().get("range").map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn requests_need_a_token_from_a_real_oauth_flow() {
    let d = drive().await;
    let anon = d.http.get(format!("{}/drive/v3/files", d.running.base)).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anon.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");

    let refreshed: Value = d
        .http
        .post(format!("{}/token", d.running.base))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "emulator-refresh-token"), ("client_id", "x")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = refreshed["access_token"].as_str().unwrap();
    let ok = d.http.get(format!("{}/drive/v3/files", d.running.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "sa@project.iam.gserviceaccount.com", "scope": "https://www.googleapis.com/auth/drive", "aud": "x", "iat": now, "exp": now + 3600, "sub": "owner@seller.vn"});
    let jwt = format!("{}.{}.c2ln", b64(json!({"alg": "RS256", "typ": "JWT"})), b64(claims));
    let sa = d
        .http
        .post(format!("{}/token", d.running.base))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(sa.status(), StatusCode::OK);
    let bad = d
        .http
        .post(format!("{}/token", d.running.base))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn folders_list_by_query_with_paging_and_generated_ids_are_single_use() {
    let d = drive().await;
    let top = d.folder("Rust cơ bản — CD12345678", "root").await;
    for i in 0..5 {
        d.folder(&format!("part {i}"), &top).await;
    }
    d.folder("it's here", &top).await;
    let list = |q: String, extra: &'static str| {
        let d = &d;
        async move {
            let v: Value = d
                .req(reqwest::Method::GET, &format!("/drive/v3/files?{extra}"))
                .query(&[("q", q.as_str()), ("fields", "nextPageToken,files(id,name)")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let found = list(format!("name = 'it\\'s here' and '{top}' in parents and trashed = false"), "").await;
    assert_eq!(found["files"].as_array().unwrap().len(), 1);
    assert_eq!(found["files"][0]["name"], "it's here");
    assert!(found["files"][0].get("mimeType").is_none(), "fields selects");

    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let extra = "pageSize=2";
        let q = format!("'{top}' in parents and mimeType='{FOLDER_MIME}'");
        let mut r = d.req(reqwest::Method::GET, &format!("/drive/v3/files?{extra}")).query(&[("q", q.as_str())]);
        if let Some(t) = &token {
            r = r.query(&[("pageToken", t.as_str())]);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        names.extend(v["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()));
        match v["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names.len(), 6);

    let bad = d.req(reqwest::Method::GET, "/drive/v3/files").query(&[("q", "size > 5")]).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let ids: Value =
        d.req(reqwest::Method::GET, "/drive/v3/files/generateIds?count=2").send().await.unwrap().json().await.unwrap();
    let id = ids["ids"][0].as_str().unwrap();
    let create = || {
        d.req(reqwest::Method::POST, "/drive/v3/files")
            .json(&json!({"id": id, "name": "x", "mimeType": FOLDER_MIME, "parents": [top]}))
    };
    assert_eq!(create().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(create().send().await.unwrap().status(), StatusCode::CONFLICT, "a second create with the same id");
    let made_up = d
        .req(reqwest::Method::POST, "/drive/v3/files")
        .json(&json!({"id": "madeup", "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), StatusCode::BAD_REQUEST);

    // Deleting a folder takes its contents with it.
    assert_eq!(
        d.req(reqwest::Method::DELETE, &format!("/drive/v3/files/{top}")).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let left = list(format!("'{top}' in parents"), "").await;
    assert!(left["files"].as_array().unwrap().is_empty());
    let gone = d.req(reqwest::Method::GET, &format!("/drive/v3/files/{top}")).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_resumable_upload_in_chunks_reports_ranges_and_a_checksum() {
    let d = drive().await;
    let data = bytes(2 * CHUNK_GRANULE + 1000);
    let total = data.len();
    let session = d.start("video.mp4", "root", Some(total as u64)).await;

    // Nothing held yet: 308 with no Range.
    let status = d.put(&session, &format!("bytes */{total}"), vec![]).await.unwrap();
    assert_eq!((status.status().as_u16(), range_header(&status)), (308, None));
    // A non-final chunk must be a multiple of 256 KiB.
    let odd = d.put(&session, &format!("bytes 0-999/{total}"), data[..1000].to_vec()).await.unwrap();
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);

    let first = d
        .put(&session, &format!("bytes 0-{}/{total}", CHUNK_GRANULE - 1), data[..CHUNK_GRANULE].to_vec())
        .await
        .unwrap();
    assert_eq!((first.status().as_u16(), range_header(&first)), (308, Some(format!("bytes=0-{}", CHUNK_GRANULE - 1))));
    // A resent chunk that overlaps what is held is accepted without writing twice.
    let end = 2 * CHUNK_GRANULE;
    let second = d.put(&session, &format!("bytes 0-{}/{total}", end - 1), data[..end].to_vec()).await.unwrap();
    assert_eq!(range_header(&second), Some(format!("bytes=0-{}", end - 1)));
    let gap =
        d.put(&session, &format!("bytes {}-{}/{total}", end + 10, total - 1), data[end + 10..].to_vec()).await.unwrap();
    assert_eq!(gap.status(), StatusCode::BAD_REQUEST, "a chunk may not leave a gap");

    let last = d.put(&session, &format!("bytes {end}-{}/{total}", total - 1), data[end..].to_vec()).await.unwrap();
    assert_eq!(last.status(), StatusCode::OK);
    let file: Value = last.json().await.unwrap();
    assert_eq!(file["size"], total.to_string(), "sizes are strings");
    assert_eq!(file["md5Checksum"], hex::encode(Md5::digest(&data)));
    assert_eq!(file["parents"], json!(["root"]));
    assert_eq!(std::fs::read(d.running.emu.blob_path(file["id"].as_str().unwrap())).unwrap(), data, "bytes on disk");

    // After completion the session answers with the file.
    let again = d.put(&session, &format!("bytes */{total}"), vec![]).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let unknown = d
        .put(
            &format!("{}/upload/drive/v3/files?uploadType=resumable&upload_id=nope", d.running.base),
            "bytes */1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // An empty file completes on its status query.
    let empty = d.start("empty.txt", "root", Some(0)).await;
    let done = d.put(&empty, "bytes */0", vec![]).await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let v: Value = done.json().await.unwrap();
    assert_eq!((v["size"].as_str(), v["md5Checksum"].as_str()), (Some("0"), Some("d41d8cd98f00b204e9800998ecf8427e")));
}

#[tokio::test]
async fn injected_faults_behave_as_documented() {
    let d = drive().await;
    let data = bytes(4 * CHUNK_GRANULE);
    let total = data.len();

    d.running.emu.set_faults(Faults { rate_partial: 1.0, ..Faults::default() });
    let session = d.start("a.bin", "root", Some(total as u64)).await;
    let r = d.put(&session, &format!("bytes 0-{}/{total}", total - 1), data.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 308, "part of the chunk kept: never assume a whole chunk arrived");
    let held = range_header(&r).map(|h| h.trim_start_matches("bytes=0-").parse::<usize>().unwrap() + 1).unwrap_or(0);
    assert!(held < total && held.is_multiple_of(CHUNK_GRANULE), "held {held}");

    d.running.emu.set_faults(Faults { rate_reset: 1.0, ..Faults::default() });
    let r = d.put(&session, &format!("bytes {held}-{}/{total}", total - 1), data[held..].to_vec()).await;
    assert!(r.is_err(), "the connection is reset mid-chunk");
    d.running.emu.set_faults(Faults::default());
    let status = d.put(&session, &format!("bytes */{total}"), vec![]).await.unwrap();
    let held2 =
        range_header(&status).map(|h| h.trim_start_matches("bytes=0-").parse::<usize>().unwrap() + 1).unwrap_or(0);
    assert!(held2 >= held && held2 < total);
    let done = d.put(&session, &format!("bytes {held2}-{}/{total}", total - 1), data[held2..].to_vec()).await.unwrap();
    let v: Value = done.json().await.unwrap();
    assert_eq!(v["md5Checksum"], hex::encode(Md5::digest(&data)), "resumed from the server's offset, intact");

    for (faults, status, reason) in [
        (Faults { rate_429: 1.0, ..Faults::default() }, 429, "rateLimitExceeded"),
        (Faults { rate_503: 1.0, ..Faults::default() }, 503, "backendError"),
        (Faults { rate_403_rate_limit: 1.0, ..Faults::default() }, 403, "rateLimitExceeded"),
        (Faults { daily_cap_exceeded: true, ..Faults::default() }, 403, "userRateLimitExceeded"),
    ] {
        d.running.emu.set_faults(faults);
        let r = d
            .req(reqwest::Method::POST, "/upload/drive/v3/files?uploadType=resumable")
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["errors"][0]["reason"], reason);
    }
    // The daily cap's message, as Drive words it.
    let r = d
        .req(reqwest::Method::POST, "/upload/drive/v3/files?uploadType=resumable")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "User rate limit exceeded.");
}

#[tokio::test]
async fn permissions_are_created_listed_and_deleted_with_drive_errors() {
    let d = drive().await;
    let folder = d.folder("Khoá học — CD1", "root").await;
    let share = |email: &str, notify: bool| {
        d.req(reqwest::Method::POST, &format!("/drive/v3/files/{folder}/permissions?sendNotificationEmail={notify}"))
            .json(&json!({"role": "reader", "type": "user", "emailAddress": email}))
    };
    let p: Value = share("Buyer@Gmail.com", false).send().await.unwrap().json().await.unwrap();
    let pid = p["id"].as_str().unwrap().to_string();
    // Sharing again with the same address keeps one permission.
    share("buyer@gmail.com", false).send().await.unwrap();
    let list: Value = d
        .req(
            reqwest::Method::GET,
            &format!("/drive/v3/files/{folder}/permissions?fields=permissions(id,role,emailAddress)"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["permissions"], json!([{"id": pid, "role": "reader", "emailAddress": "buyer@gmail.com"}]));

    let silent = share("someone@no-google.example", false).send().await.unwrap();
    assert_eq!(silent.status(), StatusCode::BAD_REQUEST);
    let v: Value = silent.json().await.unwrap();
    assert_eq!(v["error"]["errors"][0]["reason"], "invalidSharingRequest");
    assert_eq!(share("someone@no-google.example", true).send().await.unwrap().status(), StatusCode::OK);

    let del =
        d.req(reqwest::Method::DELETE, &format!("/drive/v3/files/{folder}/permissions/{pid}")).send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let again =
        d.req(reqwest::Method::DELETE, &format!("/drive/v3/files/{folder}/permissions/{pid}")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let missing = d
        .req(reqwest::Method::POST, "/drive/v3/files/nope/permissions")
        .json(&json!({"role": "reader", "type": "user", "emailAddress": "a@b.vn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// Folders are made as Google documents it, by a metadata-only `files.create`; a folder sent
/// through either upload endpoint is refused, so no client can come to depend on it.
#[tokio::test]
async fn folders_are_made_by_metadata_only_create_and_never_through_an_upload() {
    let d = drive().await;
    let made: Value = d
        .req(reqwest::Method::POST, "/drive/v3/files?fields=id,mimeType,parents")
        .json(&json!({"name": "Khoá học", "mimeType": FOLDER_MIME, "parents": ["root"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(made["mimeType"], FOLDER_MIME);
    assert_eq!(made["parents"], json!(["root"]));

    let boundary = "b0undary";
    let metadata = json!({"name": "via upload", "mimeType": FOLDER_MIME, "parents": ["root"]});
    let body = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: {FOLDER_MIME}\r\n\r\n\r\n--{boundary}--\r\n"
    );
    let multipart = d
        .req(reqwest::Method::POST, "/upload/drive/v3/files?uploadType=multipart")
        .header("content-type", format!("multipart/related; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status(), StatusCode::BAD_REQUEST);
    let error: Value = multipart.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("metadata-only"), "{error}");

    let resumable = d
        .req(reqwest::Method::POST, "/upload/drive/v3/files?uploadType=resumable")
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(resumable.status(), StatusCode::BAD_REQUEST);

    let listed: Value = d
        .req(reqwest::Method::GET, "/drive/v3/files?q=name%20%3D%20%27via%20upload%27")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["files"], json!([]), "nothing was made: {listed}");
}

/// `fail_next_chunks` fails exactly that many chunks that carry bytes, keeps none of their
/// bytes, and leaves status queries alone.
#[tokio::test]
async fn fail_next_chunks_fails_exactly_that_many_chunks() {
    let d = drive().await;
    let session = d.start("f.bin", "root", Some(CHUNK_GRANULE as u64)).await;
    d.running.emu.set_faults(Faults { fail_next_chunks: 2, ..Faults::default() });
    let range = format!("bytes 0-{}/{CHUNK_GRANULE}", CHUNK_GRANULE - 1);
    for _ in 0..2 {
        let failed = d.put(&session, &range, bytes(CHUNK_GRANULE)).await.unwrap();
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        let status = d.put(&session, &format!("bytes */{CHUNK_GRANULE}"), vec![]).await.unwrap();
        assert_eq!(status.status().as_u16(), 308);
        assert!(status.headers().get("range").is_none(), "nothing kept");
    }
    let done = d.put(&session, &range, bytes(CHUNK_GRANULE)).await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
}

/// A seller's folder shared with our identity as `role`, holding one file.
fn sellers_course(d: &Drive, role: &str, protected: bool) -> (String, String) {
    use drive_emulator::{IDENTITY, Seed, SeedShare};
    let folder = d
        .running
        .emu
        .seed(Seed {
            name: "Khoa hoc".into(),
            mime_type: Some(FOLDER_MIME.into()),
            share_with: vec![SeedShare::new(IDENTITY, role)],
            ..Seed::default()
        })
        .unwrap();
    let file = d
        .running
        .emu
        .seed(Seed {
            name: "bai-1.mp4".into(),
            parent: Some(folder.clone()),
            bytes: Some(bytes(700_001)),
            copy_requires_writer_permission: protected,
            ..Seed::default()
        })
        .unwrap();
    (folder, file)
}

async fn ids(d: &Drive, n: usize) -> Vec<String> {
    let v: Value = d
        .req(reqwest::Method::GET, &format!("/drive/v3/files/generateIds?count={n}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn files_copy_is_server_side_exact_single_use_and_refused_as_drive_refuses() {
    let d = drive().await;
    let (_, file) = sellers_course(&d, "reader", false);
    let mine = d.folder("buyer", "root").await;
    let [id, other]: [String; 2] = ids(&d, 2).await.try_into().unwrap();
    let copy = |source: &str, id: &str, parent: &str| {
        d.req(
            reqwest::Method::POST,
            &format!("/drive/v3/files/{source}/copy?supportsAllDrives=true&fields=id,name,size,md5Checksum,parents"),
        )
        .json(&json!({"id": id, "name": "bai-1.mp4", "parents": [parent]}))
    };
    let r = copy(&file, &id, &mine).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["size"], "700001", "sizes are strings, as Drive sends them");
    assert_eq!(v["md5Checksum"], hex::encode(Md5::digest(bytes(700_001))));
    assert_eq!(std::fs::read(d.running.emu.blob_path(&id)).unwrap(), bytes(700_001));
    assert_eq!(d.running.emu.copies(), (1, 700_001));
    assert_eq!(d.running.emu.bytes_written(), 0, "no bytes were uploaded");

    // The same id again: 409, never a second file.
    let r = copy(&file, &id, &mine).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Into the seller's folder, which we may only read: refused.
    let (seller_folder, _) = sellers_course(&d, "reader", false);
    let r = copy(&file, &other, &seller_folder).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["errors"][0]["reason"], "insufficientFilePermissions");
    // A file of someone else's that nobody shared with us: not found.
    let hidden = d
        .running
        .emu
        .seed(drive_emulator::Seed { name: "x".into(), text: Some("x".into()), ..Default::default() })
        .unwrap();
    let r = copy(&hidden, &other, &mine).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = d.req(reqwest::Method::GET, &format!("/drive/v3/files/{hidden}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Copy-protected: a reader may not copy it, and capabilities say so beforehand.
    let (_, protected) = sellers_course(&d, "reader", true);
    let facts: Value = d
        .req(reqwest::Method::GET, &format!("/drive/v3/files/{protected}?fields=capabilities(canCopy,canShare)"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(facts, json!({"capabilities": {"canCopy": false, "canShare": false}}));
    let r = copy(&protected, &other, &mine).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["errors"][0]["reason"], "cannotCopyFile");
    // An editor may copy it.
    let (_, editable) = sellers_course(&d, "writer", true);
    assert_eq!(copy(&editable, &other, &mine).send().await.unwrap().status(), StatusCode::OK);

    // The daily cap covers copies as it covers uploads.
    let [third]: [String; 1] = ids(&d, 1).await.try_into().unwrap();
    d.running.emu.set_faults(Faults { daily_cap_exceeded: true, ..Faults::default() });
    let r = copy(&file, &third, &mine).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["errors"][0]["reason"], "userRateLimitExceeded");
    d.running.emu.set_faults(Faults { shared_drive_full: true, ..Faults::default() });
    let r = copy(&file, &third, &mine).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["errors"][0]["reason"], "teamDriveFileLimitExceeded");
}

#[tokio::test]
async fn docs_have_no_md5_and_shortcuts_no_size_and_a_reader_cannot_share() {
    use drive_emulator::{DOCS_MIME, IDENTITY, Seed, SeedShare};
    let d = drive().await;
    let (folder, file) = sellers_course(&d, "reader", false);
    let emu = &d.running.emu;
    let doc = emu
        .seed(Seed {
            name: "Giao trinh".into(),
            parent: Some(folder.clone()),
            mime_type: Some(DOCS_MIME.into()),
            size: Some(5120),
            ..Seed::default()
        })
        .unwrap();
    let shortcut = emu
        .seed(Seed {
            name: "link".into(),
            parent: Some(folder.clone()),
            shortcut_target: Some(file.clone()),
            ..Seed::default()
        })
        .unwrap();
    let get = |id: String| {
        let d = &d;
        async move {
            d.req(
                reqwest::Method::GET,
                &format!("/drive/v3/files/{id}?fields=mimeType,size,md5Checksum,shortcutDetails"),
            )
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
        }
    };
    assert_eq!(get(doc).await, json!({"mimeType": DOCS_MIME, "size": "5120"}));
    assert_eq!(
        get(shortcut).await,
        json!({"mimeType": "application/vnd.google-apps.shortcut", "shortcutDetails": {"targetId": file, "targetMimeType": "application/octet-stream"}})
    );
    // Sharing the seller's folder needs more than read access.
    let share = |folder: &str| {
        d.req(reqwest::Method::POST, &format!("/drive/v3/files/{folder}/permissions?sendNotificationEmail=false"))
            .json(&json!({"role": "reader", "type": "user", "emailAddress": "buyer@example.com"}))
    };
    assert_eq!(share(&folder).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let editable = emu
        .seed(Seed {
            name: "shared".into(),
            mime_type: Some(FOLDER_MIME.into()),
            share_with: vec![SeedShare::new(IDENTITY, "writer")],
            ..Seed::default()
        })
        .unwrap();
    assert_eq!(share(&editable).send().await.unwrap().status(), StatusCode::OK);
}
