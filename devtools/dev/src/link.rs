//! A shaped network link: a TCP relay that caps each connection's rate in each direction.
//!
//! In production S3 and Drive are remote: each connection runs at what the network gives it,
//! and the job's CPU is its own. On one small machine, local S3 and the Drive emulator are
//! instead as fast as the cores they share with the job. `make bench` puts a link in front of
//! each, so one of its scenarios measures what the pipeline does with network-bound peers
//! (does reading overlap sending?) rather than how two processes share two cores.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Relays 127.0.0.1:(any port) to `target_url`'s host and port, each connection capped at
/// `bytes_per_sec` each way; returns the link's base URL. Runs until the process ends.
pub async fn spawn(target_url: &str, bytes_per_sec: f64) -> Result<String> {
    let authority = target_url.trim_start_matches("http://").trim_end_matches('/');
    let target =
        tokio::net::lookup_host(authority).await?.next().with_context(|| format!("no address for {authority}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, target, bytes_per_sec));
        }
    });
    Ok(base)
}

/// Timers fire up to a tick (1 ms) late, each time: without catching up, a link would run well
/// below its rate.
const CATCH_UP: Duration = Duration::from_millis(20);

async fn relay(client: TcpStream, target: SocketAddr, bytes_per_sec: f64) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(pump(client_read, server_write, bytes_per_sec), pump(server_read, client_write, bytes_per_sec));
}

/// Copies until end of stream, never faster than `bytes_per_sec` on average. A timer that
/// fires late is made up for; an idle spell earns no more credit than that (`CATCH_UP`), so
/// after one the rate holds from the next byte, as on a real link.
async fn pump(mut from: impl AsyncReadExt + Unpin, mut to: impl AsyncWriteExt + Unpin, bytes_per_sec: f64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let now = Instant::now();
        next = next.max(now.checked_sub(CATCH_UP).unwrap_or(now)) + Duration::from_secs_f64(n as f64 / bytes_per_sec);
        tokio::time::sleep_until(next).await;
    }
    let _ = to.shutdown().await;
}
