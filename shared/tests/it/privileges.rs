//! Each function's own database user (infra/db-users.sql) against MariaDB: what it needs
//! works, and what it must never touch is refused by the server.

use coursedrop::app::config::BankAccount;
use coursedrop::app::ordering::{self, OrderRequest, OrderSettings};
use coursedrop::app::payments::{self, Arrival, BankTransfer, Gateway, PaymentOutcome, PaymentSettings, TransferType};
use coursedrop::domain::{CodeCharset, CodePattern};
use coursedrop::store::{self, users};
use coursedrop::testing;
use sqlx::MySqlPool;

fn password(role: &str) -> Option<String> {
    Some(format!("coursedropTest{}", role.replace('_', "")))
}

/// A pool as `role`'s user on the test's database.
async fn as_user(pool: &MySqlPool, role: &str) -> MySqlPool {
    let database: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(pool).await.unwrap();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/coursedrop".into());
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    let options = options.database(&database).username(&format!("cd_{role}_test")).password(&password(role).unwrap());
    store::connect_with(options, 2).await.unwrap()
}

/// The server's refusal of a statement: 1142 (table) or 1143 (column) "command denied".
async fn refused(pool: &MySqlPool, sql: &'static str) -> bool {
    match sqlx::query(sql).execute(pool).await {
        Err(sqlx::Error::Database(e)) => {
            let n = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|m| m.number());
            matches!(n, Some(1142 | 1143))
        }
        other => panic!("{sql}: expected a refusal, got {other:?}"),
    }
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn create_order_cannot_touch_payments_and_the_webhook_can_pay(pool: MySqlPool) {
    let database: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(&pool).await.unwrap();
    let made = users::apply(&pool, &database, "_test", password).await.unwrap();
    assert_eq!(made.len(), users::ROLES.len());

    // create-order places an order as its own user, as the function does (catalog prices)…
    testing::seed_course(&pool, "rust-101", "Rust cơ bản", 499_000, true).await;
    let create = as_user(&pool, "create_order").await;
    let settings = OrderSettings {
        pattern: CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap(),
        bank: BankAccount {
            bank_code: "MBBank".into(),
            bank_bin: "970422".into(),
            account_number: "0123456789".into(),
            account_name: "CONG TY".into(),
        },
        ttl: chrono::Duration::minutes(30),
        max_pending_per_email: 5,
        max_pending_per_client: 30,
        coupon_ttl: chrono::Duration::minutes(15),
        max_coupon_holds_per_email: 1,
        max_coupon_holds_per_client: 3,
        routes: Default::default(),
    };
    let request = OrderRequest {
        email: Some("hoc.vien@example.com".into()),
        phone: None,
        lang: None,
        courses: Some(vec!["rust-101".into()]),
        coupon: None,
    };
    let client = Some("198.51.100.7".parse().unwrap());
    let placed = ordering::place_order(&create, &settings, &request, None, client).await.unwrap();
    let code = placed.order.code.clone();
    // …and cannot record a payment, read one, nor mark an order paid.
    assert!(
        refused(
            &create,
            "INSERT INTO payments (feed, transfer_type, amount_vnd, raw_payload) VALUES ('sepay', 'in', 1, '')"
        )
        .await
    );
    assert!(refused(&create, "SELECT COUNT(*) FROM payments").await);
    assert!(refused(&create, "UPDATE orders SET paid_vnd = total_vnd, status = 'paid'").await);
    assert!(refused(&create, "INSERT INTO outbox (queue, payload) VALUES ('enroll', '{}')").await);
    assert!(refused(&create, "DELETE FROM orders").await);

    // The webhook's user records the payment and pays the order.
    let webhook = as_user(&pool, "bank_webhook").await;
    let settings = PaymentSettings {
        pattern: CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap(),
        account_number: "0123456789".into(),
    };
    let tx = BankTransfer {
        gateway: Gateway::Sepay,
        id: "77001".into(),
        transfer_type: TransferType::In,
        amount_vnd: 499_000,
        bank: None,
        account_number: Some("0123456789".into()),
        sub_account: None,
        code: None,
        content: Some(code.to_string()),
        description: None,
        reference: Some("FT77001".into()),
        transaction_date: None,
        raw: "{}".into(),
    };
    let recorded = payments::record(&webhook, &tx, &settings, Arrival::Webhook).await.unwrap();
    assert!(matches!(recorded.outcome, PaymentOutcome::Applied { became_paid: true, .. }), "{:?}", recorded.outcome);
    // It cannot change the catalog, delete a payment, or read buyers' Drive grants.
    assert!(refused(&webhook, "UPDATE courses SET price_vnd = 1").await);
    assert!(refused(&webhook, "DELETE FROM payments").await);
    assert!(refused(&webhook, "SELECT COUNT(*) FROM drive_grants").await);

    // Running it again changes nothing and needs nothing more.
    assert_eq!(users::apply(&pool, &database, "_test", password).await.unwrap().len(), users::ROLES.len());
}
