//! The resumable uploader against the Drive emulator over real HTTP, with and without faults.

use bytes::Bytes;
use coursedrop::adapters::drive::upload::{DriveClient, Held};
use coursedrop::adapters::drive::{CHUNK_GRANULE, DriveError, StaticToken};
use drive_emulator::{Faults, TempEmulator};
use md5::{Digest, Md5};

async fn emulator() -> TempEmulator {
    TempEmulator::start("upload-test").await.unwrap()
}

fn uploader(base: &str, chunk: usize) -> DriveClient<StaticToken> {
    let mut config = coursedrop::testing::fast_drive_config(base);
    config.chunk_size = chunk;
    DriveClient::new(config, StaticToken("emulator-token".into()))
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 131 + seed as usize) % 253) as u8).collect()
}

/// The bytes as a stream of uneven pieces, as S3 delivers them.
fn stream(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, String>> + Unpin {
    let pieces: Vec<Result<Bytes, String>> = bytes.chunks(100_003).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures_util::stream::iter(pieces)
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

#[tokio::test]
async fn uploads_odd_sizes_and_empty_files_with_matching_checksums() {
    let e = emulator().await;
    let up = uploader(&e.base, CHUNK_GRANULE);
    for size in [0usize, 1, CHUNK_GRANULE, 3 * CHUNK_GRANULE + 12_345] {
        let bytes = data(size, 7);
        let session = up.start(&format!("f{size}.bin"), "root", size as u64).await.unwrap();
        let mut hasher = Md5::new();
        let mut seen = Vec::new();
        let file =
            up.upload(&session, 0, size as u64, stream(&bytes), &mut hasher, &mut |n| seen.push(n)).await.unwrap();
        let local = hex::encode(hasher.finalize());
        assert_eq!(local, md5_hex(&bytes));
        assert_eq!(file.md5_checksum.as_deref(), Some(local.as_str()), "size {size}");
        assert_eq!(file.size, size as u64);
        assert_eq!(std::fs::read(e.emu.blob_path(&file.id)).unwrap(), bytes);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&(size as u64)), "{seen:?}");
    }
}

#[tokio::test]
async fn ten_percent_faults_still_deliver_every_byte_once() {
    let e = emulator().await;
    e.emu.set_faults(Faults::spread(0.10));
    let up = uploader(&e.base, CHUNK_GRANULE);
    for i in 0..12u8 {
        let size = rand::random_range(0..6 * CHUNK_GRANULE);
        let bytes = data(size, i);
        let session = up.start(&format!("f{i}.bin"), "root", size as u64).await.unwrap();
        let mut hasher = Md5::new();
        let file = up.upload(&session, 0, size as u64, stream(&bytes), &mut hasher, &mut |_| {}).await.unwrap();
        assert_eq!(file.md5_checksum, Some(md5_hex(&bytes)), "file {i} of {size} bytes");
        assert_eq!(std::fs::read(e.emu.blob_path(&file.id)).unwrap(), bytes);
    }
}

#[tokio::test]
async fn an_interrupted_upload_resumes_from_what_drive_holds() {
    let e = emulator().await;
    let up = uploader(&e.base, CHUNK_GRANULE);
    let bytes = data(5 * CHUNK_GRANULE + 999, 3);
    let total = bytes.len() as u64;
    let session = up.start("video.mp4", "root", total).await.unwrap();

    // The source dies after three chunks' worth, as a killed job would stop.
    let cut = 3 * CHUNK_GRANULE + 50_000;
    let mut pieces: Vec<Result<Bytes, String>> =
        bytes[..cut].chunks(100_003).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    pieces.push(Err("the job was stopped".into()));
    let err = up
        .upload(&session, 0, total, futures_util::stream::iter(pieces), &mut Md5::new(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, DriveError::Source(_)), "{err}");

    // A new process: ask Drive, hash the prefix it holds, send the rest.
    let Held::Offset(held) = up.held(&session, total).await.unwrap() else { panic!("not complete yet") };
    assert!(held > 0 && held <= cut as u64, "resumes from the server's offset ({held}), not from zero");
    let mut hasher = Md5::new();
    hasher.update(&bytes[..held as usize]);
    let rest = &bytes[held as usize..];
    let file = up.upload(&session, held, total, stream(rest), &mut hasher, &mut |_| {}).await.unwrap();
    assert_eq!(hex::encode(hasher.finalize()), md5_hex(&bytes));
    assert_eq!(file.md5_checksum, Some(md5_hex(&bytes)));
    assert_eq!(std::fs::read(e.emu.blob_path(&file.id)).unwrap(), bytes, "every byte once");
}

#[tokio::test]
async fn the_daily_cap_a_lost_session_and_a_refusal_are_told_apart() {
    let e = emulator().await;
    let up = uploader(&e.base, CHUNK_GRANULE);
    e.emu.set_faults(Faults { daily_cap_exceeded: true, ..Faults::default() });
    let err = up.start("a.bin", "root", 10).await.unwrap_err();
    assert!(matches!(err, DriveError::DailyLimit(_)), "{err}");
    e.emu.set_faults(Faults::default());

    let gone = format!("{}/upload/drive/v3/files?uploadType=resumable&upload_id=expired", e.base);
    let err = up.upload(&gone, 0, 3, stream(b"abc"), &mut Md5::new(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, DriveError::SessionGone(_)), "{err}");

    let err = up.start("a.bin", "no-such-folder", 10).await.unwrap_err();
    assert!(matches!(err, DriveError::Refused { status: 404, .. }), "{err}");

    // A source shorter than announced is the source's fault, not Drive's.
    let session = up.start("short.bin", "root", 10).await.unwrap();
    let err = up.upload(&session, 0, 10, stream(b"abc"), &mut Md5::new(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, DriveError::Source(_)), "{err}");
    // So is one longer than announced: the file must not be completed with the wrong bytes.
    let session = up.start("long.bin", "root", 3).await.unwrap();
    let frames =
        futures_util::stream::iter([Ok::<_, String>(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"d"))]);
    let err = up.upload(&session, 0, 3, frames, &mut Md5::new(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, DriveError::Source(_)), "{err}");
    assert_eq!(up.held(&session, 3).await.unwrap(), Held::Offset(0), "nothing of the long source was kept");
}

#[tokio::test]
async fn pre_generated_ids_make_creates_safe_to_repeat() {
    let e = emulator().await;
    e.emu.set_faults(Faults::spread(0.10));
    let drive = uploader(&e.base, CHUNK_GRANULE);
    let ids = drive.generate_ids(2).await.unwrap();
    let first = drive.create_folder(&ids[0], "Rust cơ bản — CD12345678", "root").await.unwrap();
    let again = drive.create_folder(&ids[0], "Rust cơ bản — CD12345678", "root").await.unwrap();
    assert_eq!(first, again, "a repeated create finds the folder instead of making a second");
    assert!(first.web_view_link.unwrap().ends_with(&ids[0]));

    let session = drive.start_with_id("a.txt", &ids[0], 3, Some(&ids[1])).await.unwrap();
    drive.upload(&session, 0, 3, stream(b"abc"), &mut Md5::new(), &mut |_| {}).await.unwrap();
    let err = drive.start_with_id("a.txt", &ids[0], 3, Some(&ids[1])).await.unwrap_err();
    assert!(matches!(err, DriveError::Refused { status: 409, .. }), "{err}");
    assert_eq!(drive.file(&ids[1]).await.unwrap().unwrap().md5_checksum, Some(md5_hex(b"abc")));

    drive.delete(&ids[0]).await.unwrap();
    drive.delete(&ids[0]).await.unwrap();
    assert_eq!(drive.file(&ids[1]).await.unwrap(), None, "the folder took its file with it");
}

/// Each failed attempt counts once: a failed chunk and the status query after it are one
/// attempt. With `max_attempts` = 8, seven failures in a row are survived and eight are not
/// (the status query used to count a second time, so four were fatal).
#[tokio::test]
async fn max_attempts_allows_exactly_that_many_consecutive_failures() {
    let e = emulator().await;
    let mut config = coursedrop::testing::fast_drive_config(&e.base);
    config.chunk_size = CHUNK_GRANULE;
    config.max_attempts = 8;
    let up = DriveClient::new(config, StaticToken("emulator-token".into()));
    let bytes = data(3 * CHUNK_GRANULE + 5, 3);
    let total = bytes.len() as u64;

    e.emu.set_faults(Faults { fail_next_chunks: 7, ..Faults::default() });
    let session = up.start("seven.bin", "root", total).await.unwrap();
    let file = up
        .upload(&session, 0, total, stream(&bytes), &mut Md5::new(), &mut |_| {})
        .await
        .expect("seven failures in a row are within eight attempts");
    assert_eq!(file.md5_checksum, Some(md5_hex(&bytes)));
    assert_eq!(std::fs::read(e.emu.blob_path(&file.id)).unwrap(), bytes);

    e.emu.set_faults(Faults { fail_next_chunks: 8, ..Faults::default() });
    let session = up.start("eight.bin", "root", total).await.unwrap();
    let err = up.upload(&session, 0, total, stream(&bytes), &mut Md5::new(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, DriveError::Exhausted { attempts: 8, .. }), "{err}");

    // Progress resets the count: seven failures before each of the four chunks are survived.
    let session = up.start("spread.bin", "root", total).await.unwrap();
    let mut sent = 0;
    let mut faults_left = |n: u64| {
        if n > sent {
            sent = n;
            e.emu.set_faults(Faults { fail_next_chunks: 7, ..Faults::default() });
        }
    };
    e.emu.set_faults(Faults { fail_next_chunks: 7, ..Faults::default() });
    let file = up.upload(&session, 0, total, stream(&bytes), &mut Md5::new(), &mut faults_left).await.unwrap();
    assert_eq!(file.md5_checksum, Some(md5_hex(&bytes)));
}

/// A chunk whose answer never comes (a dead link mid-upload): the read timeout gives up on it,
/// and the upload continues from what Drive holds instead of hanging the item.
#[tokio::test]
async fn a_connection_that_stops_answering_is_given_up_and_the_upload_resumes() {
    let e = emulator().await;
    let mut config = coursedrop::testing::fast_drive_config(&e.base);
    config.chunk_size = CHUNK_GRANULE;
    config.read_timeout = std::time::Duration::from_secs(1);
    let up = DriveClient::new(config, StaticToken("emulator-token".into()));
    let bytes = data(3 * CHUNK_GRANULE + 5, 3);
    let session = up.start("stalled.bin", "root", bytes.len() as u64).await.unwrap();
    // Silent for two minutes: without a read timeout the upload would wait all of it.
    e.emu.set_faults(Faults { stall_next_chunk_ms: 120_000, ..Faults::default() });
    let (mut hasher, mut progress) = (Md5::new(), |_| {});
    let upload = up.upload(&session, 0, bytes.len() as u64, stream(&bytes), &mut hasher, &mut progress);
    let file = tokio::time::timeout(std::time::Duration::from_secs(60), upload)
        .await
        .expect("the stalled chunk was given up on, not waited for")
        .unwrap();
    assert_eq!(file.md5_checksum.as_deref(), Some(md5_hex(&bytes).as_str()));
    assert_eq!(std::fs::read(e.emu.blob_path(&file.id)).unwrap(), bytes);
}
