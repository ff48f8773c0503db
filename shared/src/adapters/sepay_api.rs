//! SePay's transaction API (v1), for reconciliation: `GET /userapi/transactions/list` with
//! `Authorization: Bearer <API token>`, about 2 requests a second, 429 with
//! `x-sepay-userapi-retry-after`, at most 5,000 transactions an answer, amounts as decimal
//! strings, ids the same numbers the webhook sends. The order of the list is not
//! documented, so listing does not depend on it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::bank_api::{ApiClient, FeedError, Pacing, text};
use crate::domain::bank_feed::{BankFeed, Listed, Listing, Start};
use crate::domain::transfer::{BankTransfer, Gateway, TransferType, vnd_from_json};

pub const DEFAULT_BASE_URL: &str = "https://my.sepay.vn";
/// SePay's documented maximum (and default) `limit`.
pub const MAX_LIMIT: u32 = 5000;

pub struct SepayApi {
    client: ApiClient,
    base_url: String,
    /// Only this account's transactions (`account_number`), when set.
    account_number: Option<String>,
    limit: u32,
}

impl SepayApi {
    pub fn new(base_url: &str, token: &str, account_number: Option<String>, limit: u32, pacing: Pacing) -> Self {
        SepayApi {
            client: ApiClient::new("SePay", format!("Bearer {token}"), "x-sepay-userapi-retry-after", pacing),
            base_url: base_url.trim_end_matches('/').to_string(),
            account_number,
            limit: limit.clamp(1, MAX_LIMIT),
        }
    }
}

/// One request's filters.
#[derive(Debug, Clone, Default)]
struct Window {
    since_id: Option<i64>,
    date_min: Option<String>,
    date_max: Option<String>,
}

struct Record {
    id: i64,
    date: String,
    transfer: Result<BankTransfer, String>,
}

fn record(v: &Value) -> Result<Record, FeedError> {
    let invalid = |reason: String| FeedError::Invalid { feed: "SePay", reason };
    // A string in SePay's example ("49682"), a number elsewhere: the same id as the webhook's.
    let id = text(v, "id")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| invalid(format!("a transaction without a numeric id: {v}")))?;
    let date = text(v, "transaction_date").unwrap_or_default();
    let amount = |key: &str| v.get(key).map(vnd_from_json).transpose();
    let transfer = match (amount("amount_in"), amount("amount_out")) {
        (Ok(amount_in), Ok(amount_out)) => {
            let (transfer_type, amount_vnd) = match (amount_in.unwrap_or(0), amount_out.unwrap_or(0)) {
                (0, out) if out != 0 => (TransferType::Out, out.abs()),
                (amount_in, _) => (TransferType::In, amount_in),
            };
            if amount_vnd < 0 {
                Err(format!("SePay transaction {id}: a negative amount_in"))
            } else {
                Ok(BankTransfer {
                    gateway: Gateway::Sepay,
                    id: id.to_string(),
                    transfer_type,
                    amount_vnd,
                    bank: text(v, "bank_brand_name"),
                    account_number: text(v, "account_number"),
                    sub_account: text(v, "sub_account"),
                    code: text(v, "code"),
                    content: text(v, "transaction_content"),
                    description: None,
                    reference: text(v, "reference_number"),
                    transaction_date: Some(date.clone()).filter(|d| !d.is_empty()),
                    raw: v.to_string(),
                })
            }
        }
        (Err(e), _) | (_, Err(e)) => Err(format!("SePay transaction {id}: {e}")),
    };
    Ok(Record { id, date, transfer })
}

impl SepayApi {
    async fn fetch(&self, window: &Window) -> Result<Vec<Record>, FeedError> {
        let mut query = vec![("limit", self.limit.to_string())];
        if let Some(a) = &self.account_number {
            query.push(("account_number", a.clone()));
        }
        if let Some(id) = window.since_id {
            query.push(("since_id", id.to_string()));
        }
        if let Some(d) = &window.date_min {
            query.push(("transaction_date_min", d.clone()));
        }
        if let Some(d) = &window.date_max {
            query.push(("transaction_date_max", d.clone()));
        }
        let url = format!("{}/userapi/transactions/list", self.base_url);
        let body = self.client.get_json(&url, &query).await?;
        let list = body.get("transactions").and_then(Value::as_array).ok_or_else(|| FeedError::Invalid {
            feed: "SePay",
            reason: format!(
                "no transactions list in the answer (status {})",
                body.get("status").unwrap_or(&Value::Null)
            ),
        })?;
        list.iter().map(record).collect()
    }
}

impl BankFeed for SepayApi {
    fn gateway(&self) -> Gateway {
        Gateway::Sepay
    }

    /// Every transaction from the start on, whatever order SePay answers in: a full answer
    /// (as many as `limit`) may have left some out, below its oldest or above its newest, so
    /// both sides are listed again (above the newest id; at or before the oldest date) until
    /// a request brings nothing new. Dates have whole seconds, so the second of the oldest
    /// is listed again and its repeats are dropped by id.
    async fn list(&self, start: &Start) -> Result<Listing, FeedError> {
        let first = match start {
            Start::Cursor(c) => Window {
                since_id: Some(c.parse().map_err(|_| FeedError::Invalid {
                    feed: "SePay",
                    reason: format!("stored cursor {c:?} is not an id"),
                })?),
                ..Window::default()
            },
            Start::Since(day) => Window { date_min: Some(format!("{day} 00:00:00")), ..Window::default() },
        };
        let mut seen: BTreeMap<i64, Record> = BTreeMap::new();
        let mut pending = vec![first];
        let mut requests = 0u32;
        while let Some(window) = pending.pop() {
            requests += 1;
            if requests > 10_000 {
                return Err(FeedError::Unbounded { feed: "SePay", pages: requests });
            }
            let page = self.fetch(&window).await?;
            let full = page.len() as u32 >= self.limit;
            let (mut newest, mut oldest_date, mut fresh) = (None::<i64>, None::<String>, 0usize);
            for r in page {
                newest = newest.max(Some(r.id));
                if !r.date.is_empty() && oldest_date.as_ref().is_none_or(|d| r.date < *d) {
                    oldest_date = Some(r.date.clone());
                }
                if let std::collections::btree_map::Entry::Vacant(slot) = seen.entry(r.id) {
                    slot.insert(r);
                    fresh += 1;
                }
            }
            if full && fresh > 0 {
                if let Some(newest) = newest {
                    pending.push(Window { since_id: Some(newest + 1), ..window.clone() });
                }
                if let Some(oldest) = oldest_date {
                    pending.push(Window { date_max: Some(oldest), ..window });
                }
            }
        }
        let items = seen
            .into_values()
            .map(|r| Listed { id: r.id.to_string(), cursor_after: (r.id + 1).to_string(), transfer: r.transfer })
            .collect();
        Ok(Listing { items, requests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_the_documented_shape() {
        let v: Value = serde_json::from_str(
            r#"{"id":"49682","bank_brand_name":"Vietcombank","account_number":"0071000888888",
            "transaction_date":"2023-03-25 14:02:37","amount_out":"0.00","amount_in":"18067000.00",
            "accumulated":"19077000.00","transaction_content":"CD12345678 chuyen tien",
            "reference_number":"MBVCB.3278907687","code":null,"sub_account":null,"bank_account_id":"19"}"#,
        )
        .unwrap();
        let r = record(&v).unwrap();
        assert_eq!((r.id, r.date.as_str()), (49682, "2023-03-25 14:02:37"));
        let t = r.transfer.unwrap();
        assert_eq!((t.id.as_str(), t.transfer_type, t.amount_vnd), ("49682", TransferType::In, 18_067_000));
        assert_eq!((t.code, t.sub_account, t.content.as_deref()), (None, None, Some("CD12345678 chuyen tien")));

        let out: Value = serde_json::from_str(r#"{"id":7,"amount_in":"0.00","amount_out":"50000.00"}"#).unwrap();
        let t = record(&out).unwrap().transfer.unwrap();
        assert_eq!((t.transfer_type, t.amount_vnd), (TransferType::Out, 50_000));

        let fractional: Value =
            serde_json::from_str(r#"{"id":8,"amount_in":"499000.50","amount_out":"0.00"}"#).unwrap();
        let refused = record(&fractional).unwrap().transfer.unwrap_err();
        assert!(refused.contains("fraction"), "{refused}");

        let no_id: Value = serde_json::from_str(r#"{"amount_in":"1.00"}"#).unwrap();
        assert!(matches!(record(&no_id), Err(FeedError::Invalid { .. })));
    }
}
