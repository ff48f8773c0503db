//! Drive credentials and metadata calls (google-drive3's hub) against the emulator over real
//! HTTP: the service-account JWT flow, the refresh-token flow, folders, listing with paging,
//! permissions, and retries under injected faults.

use std::collections::HashMap;

use coursedrop::adapters::drive::auth::DriveAuth;
use coursedrop::adapters::drive::meta::FOLDER_MIME;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::drive::{AccessToken, DriveError};
use coursedrop::app::config::Vars;
use coursedrop::testing;
use drive_emulator::{Faults, TempEmulator};
use futures_util::StreamExt;

async fn emulator() -> TempEmulator {
    TempEmulator::start("meta-test").await.unwrap()
}

fn vars(pairs: &[(&str, String)]) -> Vars {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Vars::new(move |k: &str| map.get(k).cloned())
}

fn test_key() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-service-account.json")).unwrap()
}

#[tokio::test]
async fn a_service_account_signs_in_with_a_jwt_for_its_subject_and_drives_the_hub() {
    let e = emulator().await;
    let auth = DriveAuth::from_vars(&vars(&[
        ("DRIVE_SERVICE_ACCOUNT_KEY", test_key()),
        ("DRIVE_SUBJECT", "courses@seller.example".into()),
        ("DRIVE_TOKEN_URI", format!("{}/token", e.base)),
    ]))
    .await
    .unwrap();
    let drive = DriveClient::new(testing::fast_drive_config(&e.base), auth);
    let folder = drive.create_folder(&drive.generate_ids(1).await.unwrap()[0], "Khoá học", "root").await.unwrap();
    assert_eq!(drive.file(&folder.id).await.unwrap().unwrap().name, "Khoá học");

    let grants = e.emu.token_grants();
    assert_eq!(grants.len(), 1, "one token serves several calls: {grants:?}");
    let claims = &grants[0]["claims"];
    assert_eq!(grants[0]["grant_type"], "jwt-bearer");
    assert_eq!(claims["iss"], "deliver@coursedrop-test.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], "courses@seller.example", "domain-wide delegation impersonates the subject");
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/drive");
    assert_eq!(claims["aud"], format!("{}/token", e.base));
}

#[tokio::test]
async fn a_refresh_token_is_traded_once_and_cached_and_a_revoked_one_is_a_clear_error() {
    let e = emulator().await;
    let configured = |refresh: &str| {
        let pairs = [
            ("DRIVE_REFRESH_TOKEN", refresh.to_string()),
            ("DRIVE_CLIENT_ID", "client-1".into()),
            ("DRIVE_CLIENT_SECRET", "secret-1".into()),
            ("DRIVE_TOKEN_URI", format!("{}/token", e.base)),
        ];
        vars(&pairs)
    };
    let auth = DriveAuth::from_vars(&configured("emulator-refresh-token")).await.unwrap();
    let first = auth.token().await.unwrap();
    let concurrent = futures_util::future::join_all((0..8).map(|_| auth.token())).await;
    assert!(concurrent.iter().all(|t| t.as_ref().unwrap() == &first));
    assert_eq!(e.emu.token_grants().len(), 1, "nine callers, one refresh");
    assert_eq!(e.emu.token_grants()[0]["client_id"], "client-1");
    let drive = DriveClient::new(testing::fast_drive_config(&e.base), auth);
    assert!(drive.file("root").await.unwrap().is_some(), "the refreshed token is accepted");

    let revoked = DriveAuth::from_vars(&configured("revoked")).await.unwrap();
    match revoked.token().await {
        Err(DriveError::Auth(why)) => assert!(why.contains("invalid_grant"), "{why}"),
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_must_be_exactly_one_kind() {
    let none = DriveAuth::from_vars(&vars(&[])).await.unwrap_err();
    assert!(none.to_string().contains("no Drive credentials"), "{none}");
    let two = DriveAuth::from_vars(&vars(&[("DRIVE_ACCESS_TOKEN", "t".into()), ("DRIVE_REFRESH_TOKEN", "r".into())]))
        .await
        .unwrap_err();
    assert!(two.to_string().contains("more than one"), "{two}");
    let half = DriveAuth::from_vars(&vars(&[("DRIVE_REFRESH_TOKEN", "r".into())])).await.unwrap_err();
    assert!(half.to_string().contains("DRIVE_CLIENT_ID"), "{half}");
    let garbled = DriveAuth::from_vars(&vars(&[("DRIVE_SERVICE_ACCOUNT_KEY", "{not json".into())])).await.unwrap_err();
    assert!(garbled.to_string().contains("not a service account key"), "{garbled}");
}

#[tokio::test]
async fn folders_are_idempotent_and_listing_pages_through_everything() {
    let e = emulator().await;
    let drive = DriveClient::new(testing::fast_drive_config(&e.base), DriveAuth::Fixed("emulator-token".into()));
    let id = drive.generate_ids(1).await.unwrap().remove(0);
    let made = drive.create_folder(&id, "Course — CD1234", "root").await.unwrap();
    let again = drive.create_folder(&id, "Course — CD1234", "root").await.unwrap();
    assert_eq!((made.id.as_str(), again.id.as_str()), (id.as_str(), id.as_str()), "a repeated create reuses");
    assert!(made.is_folder());
    let in_root: Vec<_> = drive
        .children("root")
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.mime_type.as_deref() == Some(FOLDER_MIME))
        .collect();
    assert_eq!(in_root.len(), 1, "one folder, not two");

    // Drive caps a page at 1000: 1003 children need a second page.
    let ids = drive.generate_ids(1000).await.unwrap();
    let more = drive.generate_ids(3).await.unwrap();
    let creates = ids.iter().chain(&more).enumerate().map(|(n, child)| {
        let drive = &drive;
        let id = id.clone();
        async move { drive.create_folder(child, &format!("part {n:04}"), &id).await.unwrap() }
    });
    futures_util::stream::iter(creates).buffer_unordered(16).collect::<Vec<_>>().await;
    let children = drive.children(&id).await.unwrap();
    assert_eq!(children.len(), 1003);
    let names: std::collections::BTreeSet<_> = children.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names.len(), 1003, "every child exactly once across pages");

    drive.delete(&id).await.unwrap();
    assert!(drive.file(&id).await.unwrap().is_none());
    drive.delete(&id).await.unwrap(); // already gone is fine
    assert!(drive.children(&id).await.unwrap().is_empty(), "a deleted folder's children went with it");
}

#[tokio::test]
async fn metadata_calls_ride_out_rate_limits_and_server_errors() {
    let e = emulator().await;
    e.emu.set_faults(Faults { rate_429: 0.2, rate_503: 0.2, rate_403_rate_limit: 0.1, ..Faults::default() });
    let drive = DriveClient::new(testing::fast_drive_config(&e.base), DriveAuth::Fixed("emulator-token".into()));
    for n in 0..10 {
        let id = drive.generate_ids(1).await.unwrap().remove(0);
        drive.create_folder(&id, &format!("f{n}"), "root").await.unwrap();
        let p = drive.share_reader(&id, "buyer@example.com", false).await.unwrap();
        assert_eq!(p.role, "reader");
        assert_eq!(drive.permissions(&id).await.unwrap().iter().filter(|p| p.role == "reader").count(), 1);
        drive.unshare(&id, &p.id).await.unwrap();
        drive.unshare(&id, &p.id).await.unwrap(); // gone already: success
    }
    e.emu.set_faults(Faults::default());
    assert_eq!(drive.children("root").await.unwrap().len(), 10, "no duplicate folders from retried creates");
}

#[tokio::test]
async fn a_refused_call_is_final_and_says_why() {
    let e = emulator().await;
    let bad = DriveClient::new(testing::fast_drive_config(&e.base), DriveAuth::Fixed("not-a-token".into()));
    match bad.generate_ids(1).await {
        Err(DriveError::Refused { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
}

/// Drive may answer any list in pages smaller than asked: with the emulator answering 7 at a
/// time, every permission of a folder shared with 130 buyers, and every child of a folder,
/// is found (a course shared with more than a page of buyers lost track of some before).
#[tokio::test]
async fn permissions_and_children_follow_every_page_however_small() {
    let e = emulator().await;
    let drive = DriveClient::new(testing::fast_drive_config(&e.base), DriveAuth::Fixed("emulator-token".into()));
    let id = drive.generate_ids(1).await.unwrap().remove(0);
    drive.create_folder(&id, "Shared course", "root").await.unwrap();
    let shares = (0..130).map(|n| {
        let (drive, id) = (&drive, id.clone());
        async move { drive.share_reader(&id, &format!("buyer{n:03}@example.com"), false).await.unwrap() }
    });
    futures_util::stream::iter(shares).buffer_unordered(8).collect::<Vec<_>>().await;
    let children = drive.generate_ids(20).await.unwrap();
    for (n, child) in children.iter().enumerate() {
        drive.create_folder(child, &format!("lesson {n:02}"), &id).await.unwrap();
    }

    e.emu.set_faults(Faults { max_page_size: 7, ..Faults::default() });
    let readers: std::collections::BTreeSet<String> = drive
        .permissions(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.role == "reader")
        .filter_map(|p| p.email_address)
        .collect();
    assert_eq!(readers.len(), 130, "every reader, across 19 pages");
    assert!(readers.contains("buyer000@example.com") && readers.contains("buyer129@example.com"));
    let listed = drive.children(&id).await.unwrap();
    assert_eq!(listed.len(), 20, "every child, across 3 pages");
}
