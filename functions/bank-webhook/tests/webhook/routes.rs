//! Payment routes of an order's own, end to end against the bank emulator's payOS and SePay
//! virtual-account APIs: the order is placed (opening both), the buyer pays, the emulator
//! posts the webhooks to this function served on a real port, reconciliation asks payOS
//! about what a webhook missed, and the routes of finished orders are closed.

use bank_emulator::{Config, Emulator, Feed, NewTransfer, PayLink, Webhook};
use coursedrop::app::config::{self, BankAccount, Vars};
use coursedrop::app::ordering::{self, OrderRequest, OrderSettings, PlacedOrder};
use coursedrop::app::routes;
use coursedrop::domain::payment_route::RouteKind;
use coursedrop::testing;
use sqlx::MySqlPool;

use super::{ACCOUNT, Harness, KEY, harness, item_statuses, order_state, pattern, scalar};

struct Routes {
    h: Harness,
    emu: Emulator,
    /// Where this function listens, for the emulator's webhooks.
    base: String,
    settings: OrderSettings,
    vars: Vars,
}

async fn routes_stack(pool: MySqlPool) -> Routes {
    let h = harness(pool.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, h.app.clone()).into_future());
    let emu = Emulator::new(Config {
        sepay_webhook: Some(Webhook { url: format!("{base}/webhooks/sepay"), key: KEY.into() }),
        payos_account: ACCOUNT.into(),
        ..Config::default()
    });
    let (emu_base, _) = emu.clone().spawn(0).await.unwrap();
    let pairs = [
        ("PAYOS_API_BASE_URL", emu_base.clone()),
        ("PAYOS_CLIENT_ID", bank_emulator::payos::CLIENT_ID.into()),
        ("PAYOS_API_KEY", bank_emulator::payos::API_KEY.into()),
        ("PAYOS_CHECKSUM_KEY", bank_emulator::payos::CHECKSUM_KEY.into()),
        ("SEPAY_VA_BASE_URL", emu_base.clone()),
        ("SEPAY_VA_ACCOUNT_XID", bank_emulator::sepay_va::ACCOUNT_XID.into()),
        ("SEPAY_VA_BANK", "bidv".into()),
        ("SEPAY_API_TOKEN", Config::default().sepay_token),
        ("SHOP_URL", "https://shop.example/".into()),
        ("ORDER_CODE_PREFIX", "CD".into()),
    ];
    let vars = Vars::new(move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()));
    let settings = OrderSettings {
        pattern: pattern(),
        bank: BankAccount {
            bank_code: "BIDV".into(),
            bank_bin: "970418".into(),
            account_number: ACCOUNT.into(),
            account_name: "CONG TY DEMO".into(),
        },
        ttl: chrono::Duration::minutes(30),
        max_pending_per_email: 50,
        max_pending_per_client: 50,
        coupon_ttl: chrono::Duration::minutes(15),
        max_coupon_holds_per_email: 1,
        max_coupon_holds_per_client: 3,
        routes: config::payment_routes(&vars).unwrap(),
    };
    testing::seed_course(&pool, "rust-101", "Rust cơ bản", 499_000, true).await;
    Routes { h, emu, base, settings, vars }
}

impl Routes {
    async fn place(&self, email: &str) -> PlacedOrder {
        let request = OrderRequest {
            email: Some(email.into()),
            phone: None,
            lang: None,
            courses: Some(vec!["rust-101".into()]),
            coupon: None,
        };
        ordering::place_order(&self.h.pool, &self.settings, &request, None, None).await.unwrap().order
    }

    fn payos_number(&self, code: &str) -> i64 {
        pattern().payos_number(&coursedrop::domain::OrderCode::parse(code, &pattern()).unwrap()).unwrap()
    }

    fn payment_settings(&self) -> coursedrop::app::payments::PaymentSettings {
        coursedrop::app::payments::PaymentSettings { pattern: pattern(), account_number: ACCOUNT.into() }
    }
}

fn into_account(number: &str, amount: i64, text: &str) -> NewTransfer {
    NewTransfer {
        feed: Feed::Sepay,
        amount_vnd: amount,
        content: text.into(),
        account_number: ACCOUNT.into(),
        at: None,
        amount_text: None,
        sub_account: Some(number.into()),
    }
}

async fn route_states(pool: &MySqlPool, code: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT r.kind, r.state FROM payment_routes r JOIN orders o ON o.id = r.order_id WHERE o.code = ? ORDER BY r.kind",
    )
    .bind(code)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn payos_and_a_virtual_account_open_with_the_order_and_one_transfer_reported_twice_pays_it_once(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    // Registering the webhook: payOS calls it first with its signed sample, which records nothing.
    let payos = config::payos_api(&r.vars).unwrap().unwrap();
    payos.confirm_webhook(&format!("{}/webhooks/payos", r.base)).await.unwrap();
    assert_eq!(r.emu.payos_webhook(), Some(format!("{}/webhooks/payos", r.base)));
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, 0, "the validation call is no payment");

    let order = r.place("buyer@example.com").await;
    let link = order.payment.payos.clone().expect("a payOS link beside our QR");
    assert!(link.checkout_url.as_deref().is_some_and(|u| u.starts_with("https://pay.payos.vn/")), "{link:?}");
    assert_eq!(link.order_code, r.payos_number(&order.code).to_string());
    assert!(order.payment.virtual_account, "{:?}", order.payment);
    assert!(order.payment.account_number.starts_with("963"), "the order's own account: {:?}", order.payment);
    assert!(order.payment.vietqr.contains(&order.payment.account_number), "our QR pays into the order's account");

    // The buyer pays the link; the seller's account is on SePay too, so both report it.
    let (_, payos_hook, sepay_hook) = r
        .emu
        .pay_payos(&PayLink { order_code: r.payos_number(&order.code), amount: None, also_sepay: true })
        .await
        .expect("a payable link");
    assert!(matches!(payos_hook, bank_emulator::Delivery::Delivered { .. }), "{payos_hook:?}");
    assert!(matches!(sepay_hook, Some(bank_emulator::Delivery::Delivered { .. })), "{sepay_hook:?}");
    let (status, paid, _) = order_state(&pool, &order.code).await;
    assert_eq!((status.as_str(), paid), ("paid", 499_000), "credited once");
    assert_eq!(item_statuses(&pool, &order.code).await, vec!["enrolling"], "sent to enrollment once");
    let received = scalar(&pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_received'").await;
    assert_eq!(received, 1);

    // Reconciliation finds nothing new, and closes both routes now that the order is paid.
    let (links, closed) =
        routes::pass(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref()).await.unwrap();
    assert_eq!((links.asked, links.found.len()), (0, 0), "a paid order's link is not asked about");
    assert_eq!((closed.closed, closed.failed.len()), (2, 0), "{closed:?}");
    assert_eq!(
        route_states(&pool, &order.code).await,
        vec![("payos_link".into(), "closed".into()), ("virtual_account".into(), "closed".into())]
    );
    let number = order.payment.account_number.clone();
    assert_eq!(r.emu.virtual_account_state(&number).as_deref(), Some("Cancelled"));
    let late = r.emu.transfer_as_the_bank_would(&into_account(&number, 499_000, "")).await;
    assert!(late.is_err(), "the bank refuses money into a closed account: {late:?}");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_missed_payos_webhook_is_found_by_reconciliation_waiting_out_429s(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    let order = r.place("buyer@example.com").await;
    // No webhook registered: payOS has the payment, we do not.
    let (_, hook, _) = r
        .emu
        .pay_payos(&PayLink { order_code: r.payos_number(&order.code), amount: None, also_sepay: false })
        .await
        .unwrap();
    assert_eq!(hook, bank_emulator::Delivery::NotConfigured);
    assert_eq!(order_state(&pool, &order.code).await.0, "pending");
    r.emu.set_faults(bank_emulator::Faults { payos_429_next: 2, ..Default::default() });
    let report = routes::reconcile_links(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref(), 50)
        .await
        .unwrap();
    assert_eq!((report.asked, report.found.len(), report.rate_limited), (1, 1, false), "{report:?}");
    assert_eq!(r.emu.stats().payos_429s, 2, "both 429s were waited out");
    assert_eq!(order_state(&pool, &order.code).await, ("paid".into(), 499_000, None));
    let actor: String = sqlx::query_scalar("SELECT actor FROM order_events WHERE kind = 'payment_received'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "payos-reconcile");
    // The webhook arriving late now changes nothing.
    r.emu.set_payos_webhook(Some(format!("{}/webhooks/payos", r.base)));
    let again = routes::reconcile_links(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref(), 50)
        .await
        .unwrap();
    assert_eq!(again.asked, 0);
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_expired_order_cancels_its_link_and_closes_its_virtual_account(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    let order = r.place("buyer@example.com").await;
    let id: u64 =
        sqlx::query_scalar("SELECT id FROM orders WHERE code = ?").bind(&order.code).fetch_one(&pool).await.unwrap();
    coursedrop::store::orders::cancel_unpaid(&pool, id, "sweeper", "not paid in time").await.unwrap();
    let closed = routes::close_finished(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref(), 50)
        .await
        .unwrap();
    assert_eq!((closed.closed, closed.failed.len()), (2, 0), "{closed:?}");
    let payos = config::payos_api(&r.vars).unwrap().unwrap();
    let reference = coursedrop::domain::payment_route::RouteRef {
        kind: RouteKind::PayosLink,
        number: r.payos_number(&order.code).to_string(),
        external_id: String::new(),
    };
    use coursedrop::domain::payment_route::PaymentRoutes;
    assert_eq!(payos.status(&reference).await.unwrap().status, "CANCELLED");
    assert_eq!(r.emu.virtual_account_state(&order.payment.account_number).as_deref(), Some("Cancelled"));
    let closed_events = scalar(
        &pool,
        "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_route' AND detail LIKE '%closed: its order no longer waits%'",
    )
    .await;
    assert_eq!(closed_events, 2);
    // A second pass has nothing left to close.
    assert_eq!(
        routes::close_finished(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref(), 50)
            .await
            .unwrap()
            .closed,
        0
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn money_into_an_orders_virtual_account_pays_it_whatever_the_text_and_a_wrong_amount_is_kept(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    let first = r.place("one@example.com").await;
    let second = r.place("two@example.com").await;
    // No code at all in the text: the account names the order.
    let (_, hook) =
        r.emu.transfer_as_the_bank_would(&into_account(&first.payment.account_number, 499_000, "")).await.unwrap();
    assert!(matches!(hook, bank_emulator::Delivery::Delivered { .. }), "{hook:?}");
    assert_eq!(order_state(&pool, &first.code).await.0, "paid");
    // Another order's code in the text does not move the money there either.
    let wrong_text = format!("{} chuyen khoan", second.code);
    let _ = r.emu.transfer_as_the_bank_would(&into_account(&second.payment.account_number, 1_000, &wrong_text)).await;
    assert_eq!(order_state(&pool, &second.code).await, ("pending".into(), 0, None), "a wrong amount pays nothing");
    let kept: (Option<u64>, i64) = sqlx::query_as("SELECT order_id, amount_vnd FROM payments WHERE amount_vnd = 1000")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, (None, 1_000), "kept as unmatched evidence for the seller");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn when_both_providers_fail_the_order_is_still_payable_by_its_code(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    r.emu.set_faults(bank_emulator::Faults { payos_fail_next: 10, va_fail_next: 10, ..Default::default() });
    let order = r.place("buyer@example.com").await;
    assert!(!order.payment.virtual_account);
    assert_eq!(order.payment.account_number, ACCOUNT, "the main account, with the code");
    assert!(order.payment.payos.is_none());
    assert_eq!(
        route_states(&pool, &order.code).await,
        vec![("payos_link".into(), "failed".into()), ("virtual_account".into(), "failed".into())]
    );
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM payment_routes ORDER BY kind").fetch_all(&pool).await.unwrap();
    assert!(reasons.iter().all(|r| r.contains("could not be reached") || r.contains("503")), "{reasons:?}");
    r.emu.set_faults(bank_emulator::Faults::default());
    let text =
        NewTransfer { sub_account: None, content: format!("{} hoc phi", order.code), ..into_account("", 499_000, "") };
    r.emu.transfer_as_the_bank_would(&text).await.unwrap();
    assert_eq!(order_state(&pool, &order.code).await.0, "paid");
    // A failed route is never closed or asked about.
    let (links, closed) =
        routes::pass(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref()).await.unwrap();
    assert_eq!((links.asked, closed.closed), (0, 0));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_link_payos_already_has_is_taken_not_made_twice(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    let payos = config::payos_api(&r.vars).unwrap().unwrap();
    use coursedrop::domain::payment_route::{PaymentRoutes, RouteRequest};
    let request = RouteRequest {
        code: "CD00481239".into(),
        amount_vnd: 499_000,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(30),
        payos_number: Some(481_239),
        return_url: Some("https://shop.example/?order=CD00481239&t=x".into()),
    };
    let first = payos.open(&request).await.unwrap();
    // A create that timed out is sent again: payOS answers 231, and the link it has is used.
    let second = payos.open(&request).await.unwrap();
    assert_eq!(first.external_id, second.external_id);
    assert_eq!(second.number, "481239");
    let too_long = RouteRequest { code: "CD00481240".into(), payos_number: Some(481_240), ..request.clone() };
    assert!(payos.open(&too_long).await.is_ok(), "a 10-character code is cut to payOS's 9 for the description");
    let no_page = RouteRequest { return_url: None, payos_number: Some(481_241), ..request };
    let refused = payos.open(&no_page).await.unwrap_err();
    assert!(refused.to_string().contains("SHOP_URL"), "{refused}");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_link_paid_as_its_order_expired_is_recorded_before_it_is_closed(pool: MySqlPool) {
    let r = routes_stack(pool.clone()).await;
    let order = r.place("buyer@example.com").await;
    // The buyer pays on payOS's page at the last moment; the webhook is lost; the sweeper
    // then cancels the order as expired.
    let pay = PayLink { order_code: r.payos_number(&order.code), amount: None, also_sepay: false };
    assert_eq!(r.emu.pay_payos(&pay).await.unwrap().1, bank_emulator::Delivery::NotConfigured);
    let id: u64 =
        sqlx::query_scalar("SELECT id FROM orders WHERE code = ?").bind(&order.code).fetch_one(&pool).await.unwrap();
    coursedrop::store::orders::cancel_unpaid(&pool, id, "sweeper", "not paid in time").await.unwrap();
    let closed = routes::close_finished(&pool, &r.settings.routes, &r.payment_settings(), r.h.publisher.as_ref(), 50)
        .await
        .unwrap();
    assert_eq!(closed.found.len(), 1, "the money payOS received is recorded, not closed away: {closed:?}");
    let (status, paid, attention) = order_state(&pool, &order.code).await;
    assert_eq!((status.as_str(), paid), ("cancelled", 499_000));
    assert!(attention.is_some(), "the cancelled order that received money is flagged for the seller");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments WHERE order_id IS NOT NULL").await, 1);
}
