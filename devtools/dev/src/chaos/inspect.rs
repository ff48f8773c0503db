use anyhow::{Context, Result};
use coursedrop::adapters::drive::upload::DriveClient;

/// Every file under `folder`, by path, with its MD5 (folders walked, not listed).
pub(super) async fn list_tree<T: coursedrop::adapters::drive::AccessToken>(
    drive: &DriveClient<T>,
    folder: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut todo = vec![(folder.to_string(), String::new())];
    while let Some((id, prefix)) = todo.pop() {
        for f in drive.children(&id).await? {
            let path = format!("{prefix}{}", f.name);
            if f.mime_type.as_deref() == Some("application/vnd.google-apps.folder") {
                todo.push((f.id, format!("{path}/")));
            } else {
                out.push((path, f.md5_checksum));
            }
        }
    }
    Ok(out)
}

/// (headers-and-body, recipients) of each message to a chaos buyer of this run.
pub(super) fn read_maildir(maildir: &str, to_prefix: &str) -> Result<Vec<(String, String)>> {
    let dir = std::path::Path::new(maildir).join("new");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        let text = text.replace("\r\n", "\n");
        let head = text.split("\n\n").next().unwrap_or("").to_string();
        let to = head.lines().find(|l| l.to_ascii_lowercase().starts_with("to:")).unwrap_or("").to_string();
        if to.contains(to_prefix) {
            out.push((head, to));
        }
    }
    Ok(out)
}
