//! The S3 source against moto, and one file copied from S3 into the Drive emulator.

use coursedrop::adapters::drive::upload::{DriveClient, Held};
use coursedrop::adapters::drive::{CHUNK_GRANULE, DriveConfig, StaticToken};
use coursedrop::adapters::source::{S3Location, SourceError};
use coursedrop::testing;
use futures_util::StreamExt;
use md5::{Digest, Md5};

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed as usize) % 241) as u8).collect()
}

#[tokio::test]
async fn lists_a_course_tree_page_by_page_and_reads_from_an_offset() {
    let source = testing::s3_source().await.with_page_size(2);
    let video = data(CHUNK_GRANULE + 7, 1);
    let bucket = testing::bucket_with(
        &source,
        &[
            ("courses/rust-101/01-intro/welcome.mp4", video.clone()),
            ("courses/rust-101/01-intro/", vec![]),
            ("courses/rust-101/02-ownership/notes/empty.txt", vec![]),
            ("courses/rust-101/README.md", b"# Rust".to_vec()),
            ("courses/rust-102/other.txt", b"not ours".to_vec()),
        ],
    )
    .await;
    let at = S3Location::parse(&format!("s3://{bucket}/courses/rust-101")).unwrap();
    let listed = source.list(&at).await.unwrap();
    let paths: Vec<(&str, u64)> = listed.iter().map(|o| (o.path.as_str(), o.size)).collect();
    assert_eq!(
        paths,
        vec![("01-intro/welcome.mp4", video.len() as u64), ("02-ownership/notes/empty.txt", 0), ("README.md", 6)],
        "folder markers skipped, other prefixes left out"
    );

    let mut tail = Vec::new();
    let mut stream = source.open(&bucket, &listed[0].key, 1000).await.unwrap();
    while let Some(chunk) = stream.next().await {
        tail.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(tail, video[1000..]);

    let missing = source.open(&bucket, "courses/rust-101/gone.mp4", 0).await.err().unwrap();
    assert!(matches!(missing, SourceError::Missing(_)) && missing.is_permanent(), "{missing}");
    let no_bucket = source.list(&S3Location::parse("s3://no-such-bucket-here/x/").unwrap()).await.unwrap_err();
    assert!(matches!(no_bucket, SourceError::Missing(_)), "{no_bucket}");
}

/// Keys with a leading `/` or a `//` after the prefix make no empty-named folders: empty
/// segments are dropped; two keys that would become the same file are refused, naming both.
#[tokio::test]
async fn empty_key_segments_make_no_empty_or_duplicate_folders() {
    let source = testing::s3_source().await;
    let bucket = testing::bucket_with(
        &source,
        &[("c//lead.txt", b"1".to_vec()), ("c/a//b.mp4", b"22".to_vec()), ("c/a/c.md", b"333".to_vec())],
    )
    .await;
    let at = S3Location::parse(&format!("s3://{bucket}/c/")).unwrap();
    let listed = source.list(&at).await.unwrap();
    let mut paths: Vec<&str> = listed.iter().map(|o| o.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, vec!["a/b.mp4", "a/c.md", "lead.txt"]);

    let clash = testing::bucket_with(&source, &[("c/a//b.mp4", b"1".to_vec()), ("c/a/b.mp4", b"2".to_vec())]).await;
    let refused = source.list(&S3Location::parse(&format!("s3://{clash}/c/")).unwrap()).await.unwrap_err();
    assert!(matches!(refused, SourceError::Collision { .. }) && refused.is_permanent(), "{refused}");
    assert!(refused.to_string().contains("c/a//b.mp4") && refused.to_string().contains("c/a/b.mp4"), "{refused}");
}

#[tokio::test]
async fn a_file_streams_from_s3_into_drive_and_resumes_from_drives_offset() {
    let source = testing::s3_source().await;
    let bytes = data(4 * CHUNK_GRANULE + 321, 9);
    let bucket = testing::bucket_with(&source, &[("c/lesson.mp4", bytes.clone())]).await;

    let drive = drive_emulator::TempEmulator::start("source-test").await.unwrap();
    let mut config = DriveConfig::new(&drive.base);
    config.chunk_size = CHUNK_GRANULE;
    let up = DriveClient::new(config, StaticToken("emulator-token".into()));
    let total = bytes.len() as u64;
    let session = up.start("lesson.mp4", "root", total).await.unwrap();

    // The first run stops a little past two chunks (the stream is cut short, as a killed
    // job's is).
    let first = Box::pin(source.open(&bucket, "c/lesson.mp4", 0).await.unwrap().scan(0usize, |seen, item| {
        let go = *seen < 2 * CHUNK_GRANULE + 1000;
        if let Ok(b) = &item {
            *seen += b.len();
        }
        futures_util::future::ready(go.then_some(item))
    }));
    let _ = up.upload(&session, 0, total, first, &mut Md5::new(), &mut |_| {}).await;
    let Held::Offset(held) = up.held(&session, total).await.unwrap() else { panic!("not complete") };
    assert!(held > 0, "something was held before the stop");

    // The restart hashes the held prefix from S3 and streams the rest from Drive's offset.
    let mut hasher = Md5::new();
    let mut prefix = source.open(&bucket, "c/lesson.mp4", 0).await.unwrap();
    let mut hashed = 0u64;
    while hashed < held {
        let chunk = prefix.next().await.unwrap().unwrap();
        let take = chunk.len().min((held - hashed) as usize);
        hasher.update(&chunk[..take]);
        hashed += take as u64;
    }
    let rest = source.open(&bucket, "c/lesson.mp4", held).await.unwrap();
    let file = up.upload(&session, held, total, rest, &mut hasher, &mut |_| {}).await.unwrap();
    let local = hex::encode(hasher.finalize());
    assert_eq!(file.md5_checksum.as_deref(), Some(local.as_str()));
    assert_eq!(local, hex::encode(Md5::digest(&bytes)));
    assert_eq!(std::fs::read(drive.emu.blob_path(&file.id)).unwrap(), bytes);
}

#[tokio::test]
async fn s3_clients_set_no_limit_on_a_whole_transfer() {
    // The shared SDK configuration limits operations to 8 s for SQS; course files take longer.
    let source = testing::s3_source().await;
    let timeouts = source.client().config().timeout_config().cloned().unwrap();
    assert_eq!(timeouts.operation_timeout(), None);
    assert_eq!(timeouts.operation_attempt_timeout(), None);
    assert_eq!(timeouts.connect_timeout(), Some(std::time::Duration::from_secs(5)));
}

#[tokio::test]
async fn ensuring_a_bucket_from_many_places_at_once_succeeds_for_all() {
    let source = testing::s3_source().await;
    let bucket = format!("coursedrop-race-{}", rand::random::<u32>());
    let results = futures_util::future::join_all((0..8).map(|_| source.ensure_bucket(&bucket, "ap-southeast-1"))).await;
    for r in results {
        r.unwrap();
    }
}
