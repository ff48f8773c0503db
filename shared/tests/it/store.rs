//! Store tests against a real MySQL/MariaDB: each test gets a fresh database from
//! `sqlx::test` (DATABASE_URL names the server; `make test` starts one).

use chrono::{Duration, Utc};
use coursedrop::domain::{CourseSlug, Email, ItemStatus, OrderCode, OrderStatus, Queue, Stage, Status, Vnd};
use coursedrop::store::items::{self, ItemChange};
use coursedrop::store::{self, StoreError, catalog, events, orders, outbox};
use sqlx::MySqlPool;

struct Fixture {
    order_id: u64,
    item_ids: Vec<u64>,
}

async fn order_with_items(pool: &MySqlPool, n: usize) -> Fixture {
    let mut conn = pool.acquire().await.unwrap();
    let mut courses = Vec::new();
    for i in 0..n {
        let slug = CourseSlug::parse(&format!("course-{i}-{}", rand_suffix())).unwrap();
        let id = catalog::insert(
            &mut conn,
            &catalog::NewCourse {
                slug: &slug,
                title: "Rust cơ bản",
                price: Vnd::new(499_000).unwrap(),
                source: "s3://seller/courses/rust/",
                delivery_mode: coursedrop::adapters::source::DeliveryMode::Copy,
                lms_course_id: None,
            },
        )
        .await
        .unwrap();
        courses.push(id);
    }
    order_of(pool, &courses).await
}

/// A course and a pending order for it, written as the first schema has them: today's store
/// code names columns later migrations add. Answers the order's id.
async fn old_schema_order(pool: &MySqlPool, code: &str) -> u64 {
    let course = sqlx::query(
        "INSERT INTO courses (slug, title, price_vnd, source) VALUES (?, 'Rust', 499000, 's3://seller/rust/')",
    )
    .bind(format!("old-{}", code.to_lowercase()))
    .execute(pool)
    .await
    .unwrap()
    .last_insert_id();
    let order = sqlx::query(
        "INSERT INTO orders (code, email, total_vnd, status, expires_at)
         VALUES (?, 'buyer@example.com', 499000, 'pending', NOW(3) + INTERVAL 30 MINUTE)",
    )
    .bind(code)
    .execute(pool)
    .await
    .unwrap()
    .last_insert_id();
    sqlx::query(
        "INSERT INTO order_items (order_id, course_id, price_vnd, status) VALUES (?, ?, 499000, 'awaiting_payment')",
    )
    .bind(order)
    .bind(course)
    .execute(pool)
    .await
    .unwrap();
    order
}

/// The migrations before the one whose description contains `name`, applied.
async fn migrate_up_to(pool: &MySqlPool, name: &str) {
    let all = &store::MIGRATOR;
    let index = all.iter().position(|m| m.description.contains(name)).unwrap_or_else(|| panic!("migration {name}"));
    let before = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(all.migrations[..index].to_vec()),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(pool).await.unwrap();
}

/// Orders placed before view tokens existed get one each, distinct, so their status view opens
/// with a token and never by the code alone; the previous release's insert still works.
#[sqlx::test(migrations = false)]
async fn the_view_token_migration_gives_every_existing_order_its_own_token(pool: MySqlPool) {
    migrate_up_to(&pool, "order view token").await;
    old_schema_order(&pool, "CD11111111").await;
    old_schema_order(&pool, "CD22222222").await;
    store::MIGRATOR.run(&pool).await.unwrap();
    let tokens: Vec<Option<String>> =
        sqlx::query_scalar("SELECT view_token FROM orders ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(tokens.len(), 2);
    for t in &tokens {
        let t = t.as_deref().expect("a token for every existing order");
        assert!(t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
    }
    assert_ne!(tokens[0], tokens[1]);
    // The previous release's insert (no token) still works on the new schema; that order has
    // no token, so its view opens for nobody.
    old_schema_order(&pool, "CD33333333").await;
    let order =
        coursedrop::app::ordering::order_view(&pool, &OrderCode::from_stored("CD33333333".into()), "").await.unwrap();
    assert!(order.is_none());
}

/// An order of one item per course given, each at 499,000 VND.
async fn order_of(pool: &MySqlPool, courses: &[u64]) -> Fixture {
    let n = courses.len();
    let items: Vec<(u64, Vnd)> = courses.iter().map(|id| (*id, Vnd::new(499_000).unwrap())).collect();
    let code = OrderCode::from_stored(format!("CD{}", rand_suffix()));
    let email = Email::parse("buyer@example.com").unwrap();
    let created = orders::create(
        pool,
        &orders::NewOrder {
            code: &code,
            email: &email,
            phone: None,
            lang: "vi",
            expires_at: Utc::now() + Duration::minutes(30),
            items: &items,
            idempotency_key: None,
            request_hash: None,
            coupon: None,
        },
        "test",
    )
    .await
    .unwrap();
    assert_eq!(created.total.get(), 499_000 * n as i64);
    Fixture { order_id: created.order_id, item_ids: created.item_ids }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(10_000_000);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Puts an item straight into a status, bypassing the state machine, to set up a case.
async fn force_item(pool: &MySqlPool, item_id: u64, status: ItemStatus) {
    let stage = (status == ItemStatus::Failed).then_some("deliver");
    sqlx::query("UPDATE order_items SET status = ?, failed_stage = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(stage)
        .bind(item_id)
        .execute(pool)
        .await
        .unwrap();
}

async fn count(pool: &MySqlPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn item_status(pool: &MySqlPool, id: u64) -> ItemStatus {
    items::status(&mut pool.acquire().await.unwrap(), id).await.unwrap().unwrap()
}

fn change_for(item_id: u64, from: ItemStatus, to: ItemStatus) -> ItemChange<'static> {
    if to == ItemStatus::Failed {
        ItemChange::failure(item_id, from, Stage::Deliver, "source object missing", "test")
    } else {
        ItemChange::new(item_id, from, to, "test")
    }
}

// ---------------------------------------------------------------- migrations

async fn schema_snapshot(pool: &MySqlPool) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT CONCAT_WS('|', table_name, column_name, column_type, is_nullable, IFNULL(column_default, 'NULL'))
         FROM information_schema.columns WHERE table_schema = DATABASE()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT CONCAT_WS('|', table_name, index_name, non_unique, seq_in_index, column_name)
         FROM information_schema.statistics WHERE table_schema = DATABASE()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.extend(indexes);
    rows.sort();
    rows
}

#[sqlx::test(migrations = false)]
async fn migrations_apply_to_an_empty_database_and_again_change_nothing(pool: MySqlPool) {
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").await, 0);

    store::migrate(&pool).await.unwrap();
    let first = schema_snapshot(&pool).await;
    let applied = count(&pool, "SELECT COUNT(*) FROM _sqlx_migrations").await;
    assert_eq!(applied as usize, store::MIGRATOR.iter().count());

    for table in ["courses", "orders", "order_items", "payments", "delivered_files", "outbox", "order_events"] {
        let charset: String = sqlx::query_scalar(
            "SELECT c.character_set_name FROM information_schema.tables t
             JOIN information_schema.collation_character_set_applicability c ON c.collation_name = t.table_collation
             WHERE t.table_schema = DATABASE() AND t.table_name = ?",
        )
        .bind(table)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("table {table}: {e}"));
        assert_eq!(charset, "utf8mb4", "table {table}");
    }
    // Indexes the flows rely on.
    for needle in [
        "orders|uq_orders_code|0|1|code",
        "payments|uq_payments_feed_txn|0|1|feed",
        "payments|uq_payments_feed_txn|0|2|feed_txn_id",
        "payments|uq_payments_sepay_id|0|1|sepay_id",
        "order_items|ix_items_status_updated|1|1|status",
        "order_items|ix_items_status_updated|1|2|updated_at",
        "outbox|ix_outbox_unconsumed|1|1|consumed_at",
        "outbox|ix_outbox_item|1|1|item_id",
    ] {
        assert!(first.iter().any(|r| r == needle), "missing index {needle}");
    }

    store::migrate(&pool).await.unwrap();
    assert_eq!(schema_snapshot(&pool).await, first);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM _sqlx_migrations").await, applied);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn unique_keys_hold(pool: MySqlPool) {
    let f = order_with_items(&pool, 1).await;
    let code: String =
        sqlx::query_scalar("SELECT code FROM orders WHERE id = ?").bind(f.order_id).fetch_one(&pool).await.unwrap();
    let dup = sqlx::query(
        "INSERT INTO orders (code, email, total_vnd, status, expires_at) VALUES (?, 'a@b.vn', 1, 'pending', NOW())",
    )
    .bind(&code)
    .execute(&pool)
    .await;
    assert!(dup.is_err(), "a second order with code {code} was accepted");
    let payment = |gateway: &'static str| {
        sqlx::query(
            "INSERT INTO payments (feed, feed_txn_id, transfer_type, amount_vnd, raw_payload)
             VALUES (?, '92704', 'in', 1000, '{}')",
        )
        .bind(gateway)
    };
    payment("sepay").execute(&pool).await.unwrap();
    assert!(payment("sepay").execute(&pool).await.is_err(), "duplicate SePay id accepted");
    // The same number from another feed is another transfer.
    payment("casso").execute(&pool).await.unwrap();
    payment("payos").execute(&pool).await.unwrap();
    assert!(payment("momo").execute(&pool).await.is_err(), "an unknown feed was accepted");
}

/// The bank-feeds migration keeps every payment recorded before it: each becomes a SePay
/// payment keyed by its old id, arrived by webhook, with its bank name kept; and the previous
/// release's insert still works on the new schema and still deduplicates.
#[sqlx::test(migrations = false)]
async fn the_bank_feeds_migration_keeps_every_existing_payment(pool: MySqlPool) {
    migrate_up_to(&pool, "bank feeds").await;
    let order_id = old_schema_order(&pool, "CD12345678").await;
    sqlx::query(
        "INSERT INTO payments (sepay_id, order_id, transfer_type, amount_vnd, gateway, content, raw_payload)
         VALUES (92704, ?, 'in', 500000, 'Vietcombank', 'CD12345678', '{\"id\":92704}'),
                (92705, NULL, 'out', 1000, 'MBBank', NULL, '{}')",
    )
    .bind(order_id)
    .execute(&pool)
    .await
    .unwrap();

    store::migrate(&pool).await.unwrap();
    // feed, feed_txn_id, order_id, transfer_type, bank (the gateway column), arrived_by
    type Row = (String, Option<String>, Option<u64>, String, Option<String>, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT feed, feed_txn_id, order_id, transfer_type, gateway, arrived_by FROM payments ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "sepay".into(),
                Some("92704".into()),
                Some(order_id),
                "in".into(),
                Some("Vietcombank".into()),
                "webhook".into()
            ),
            ("sepay".into(), Some("92705".into()), None, "out".into(), Some("MBBank".into()), "webhook".into()),
        ]
    );
    // The old id still deduplicates, by the new key and by the old.
    let again = sqlx::query(
        "INSERT INTO payments (feed, feed_txn_id, transfer_type, amount_vnd, raw_payload) VALUES ('sepay', '92704', 'in', 1, '{}')",
    )
    .execute(&pool)
    .await;
    assert!(again.is_err(), "a payment recorded before the migration was accepted again");
    // The previous release's insert, unchanged, on the new schema: accepted once, then refused.
    let old_release =
        "INSERT INTO payments (sepay_id, order_id, transfer_type, amount_vnd, gateway, content, raw_payload)
                       VALUES (92706, NULL, 'in', 1000, 'MBBank', 'x', '{}')";
    sqlx::query(old_release).execute(&pool).await.unwrap();
    assert!(
        sqlx::query(old_release).execute(&pool).await.is_err(),
        "the previous release could record a payment twice"
    );
}

// ---------------------------------------------------------------- item state machine

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn every_allowed_item_transition_succeeds_and_writes_its_event(pool: MySqlPool) {
    for &(from, to) in ItemStatus::TRANSITIONS {
        let f = order_with_items(&pool, 1).await;
        let id = f.item_ids[0];
        force_item(&pool, id, from).await;
        let events_before = count(&pool, "SELECT COUNT(*) FROM order_events").await;
        let outbox_before = count(&pool, "SELECT COUNT(*) FROM outbox").await;

        let out =
            items::transition(&pool, &change_for(id, from, to)).await.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));

        assert_eq!(out.order_id, f.order_id);
        assert_eq!(item_status(&pool, id).await, to, "{from} -> {to}");
        let last: (Option<u64>, Option<String>, Option<String>, String) =
            sqlx::query_as("SELECT item_id, from_status, to_status, actor FROM order_events ORDER BY id DESC LIMIT 1")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(last, (Some(id), Some(from.as_str().into()), Some(to.as_str().into()), "test".into()));
        assert_eq!(count(&pool, "SELECT COUNT(*) FROM order_events").await, events_before + 1);

        let outbox_rows = count(&pool, "SELECT COUNT(*) FROM outbox").await - outbox_before;
        match to.starts_queue() {
            Some(queue) => {
                assert_eq!(outbox_rows, 1, "{from} -> {to} must enqueue for {queue}");
                let msg = out.outbox.expect("outbox message returned");
                assert_eq!(msg.queue, queue);
                assert_eq!(msg.body, format!("{{\"item_id\":{id}}}"));
            }
            None => assert_eq!(outbox_rows, 0, "{from} -> {to} must not enqueue"),
        }
        if to == ItemStatus::Failed {
            let (stage, err): (Option<String>, Option<String>) =
                sqlx::query_as("SELECT failed_stage, last_error FROM order_items WHERE id = ?")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!((stage.as_deref(), err.as_deref()), (Some("deliver"), Some("source object missing")));
        }
    }
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn every_other_item_transition_is_refused_and_changes_nothing(pool: MySqlPool) {
    let f = order_with_items(&pool, 1).await;
    let id = f.item_ids[0];
    let mut refused = 0;
    for &from in ItemStatus::ALL {
        for &to in ItemStatus::ALL {
            if from.can_become(to) {
                continue;
            }
            force_item(&pool, id, from).await;
            let events_before = count(&pool, "SELECT COUNT(*) FROM order_events").await;
            let outbox_before = count(&pool, "SELECT COUNT(*) FROM outbox").await;
            let err = items::transition(&pool, &change_for(id, from, to)).await.unwrap_err();
            assert!(
                matches!(err, StoreError::IllegalItemTransition { from: f, to: t } if f == from && t == to),
                "{from} -> {to}: {err}"
            );
            assert_eq!(item_status(&pool, id).await, from);
            assert_eq!(count(&pool, "SELECT COUNT(*) FROM order_events").await, events_before);
            assert_eq!(count(&pool, "SELECT COUNT(*) FROM outbox").await, outbox_before);
            refused += 1;
        }
    }
    let n = ItemStatus::ALL.len();
    assert_eq!(refused, n * n - ItemStatus::TRANSITIONS.len());
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_transition_from_the_wrong_current_status_is_a_conflict_and_changes_nothing(pool: MySqlPool) {
    let f = order_with_items(&pool, 1).await;
    let id = f.item_ids[0];
    force_item(&pool, id, ItemStatus::Enrolled).await;
    let events_before = count(&pool, "SELECT COUNT(*) FROM order_events").await;

    let err = items::transition(&pool, &change_for(id, ItemStatus::Enrolling, ItemStatus::Enrolled)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::ItemConflict { expected: ItemStatus::Enrolling, actual: ItemStatus::Enrolled }),
        "{err}"
    );
    assert_eq!(item_status(&pool, id).await, ItemStatus::Enrolled);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM order_events").await, events_before);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM outbox").await, 0);

    let err =
        items::transition(&pool, &change_for(999_999, ItemStatus::Enrolling, ItemStatus::Enrolled)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: "item", .. }), "{err}");

    // Into failed needs its stage and reason; nothing else may carry them.
    let mut bare = ItemChange::new(id, ItemStatus::Enrolled, ItemStatus::Failed, "test");
    assert!(matches!(items::transition(&pool, &bare).await, Err(StoreError::FailureDetail)));
    bare.reason = Some("why");
    assert!(matches!(items::transition(&pool, &bare).await, Err(StoreError::FailureDetail)));
    assert_eq!(item_status(&pool, id).await, ItemStatus::Enrolled);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn twenty_concurrent_attempts_at_one_transition_have_exactly_one_winner(pool: MySqlPool) {
    let f = order_with_items(&pool, 1).await;
    let id = f.item_ids[0];
    force_item(&pool, id, ItemStatus::Enrolling).await;

    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                items::transition(&pool, &ItemChange::new(id, ItemStatus::Enrolling, ItemStatus::Enrolled, "racer"))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    let mut conflicts = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::ItemConflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((wins, conflicts), (1, 19));
    assert_eq!(item_status(&pool, id).await, ItemStatus::Enrolled);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'item_status'").await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM outbox WHERE queue = 'deliver'").await, 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_operator_retry_returns_a_failed_item_to_its_stage_with_a_message(pool: MySqlPool) {
    let f = order_with_items(&pool, 3).await;
    for (stage, item, from) in [
        (Stage::Enroll, f.item_ids[0], ItemStatus::Enrolling),
        (Stage::Deliver, f.item_ids[1], ItemStatus::Delivering),
        (Stage::Finalize, f.item_ids[2], ItemStatus::Delivered),
    ] {
        force_item(&pool, item, from).await;
        items::transition(&pool, &ItemChange::failure(item, from, stage, "boom", "test")).await.unwrap();
        sqlx::query("UPDATE order_items SET attempts = 5 WHERE id = ?").bind(item).execute(&pool).await.unwrap();

        let out = items::retry_failed(&pool, item, "operator:lan").await.unwrap();

        assert_eq!(item_status(&pool, item).await, stage.retry_status());
        assert_eq!(out.outbox.map(|m| m.queue), stage.retry_status().starts_queue());
        let (failed_stage, attempts): (Option<String>, u32) =
            sqlx::query_as("SELECT failed_stage, attempts FROM order_items WHERE id = ?")
                .bind(item)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((failed_stage, attempts), (None, 0), "retry starts the stage afresh");
    }
    let err = items::retry_failed(&pool, f.item_ids[0], "operator:lan").await.unwrap_err();
    assert!(matches!(err, StoreError::ItemConflict { expected: ItemStatus::Failed, .. }), "{err}");
}

// ---------------------------------------------------------------- order state machine

async fn force_order(pool: &MySqlPool, id: u64, status: OrderStatus) {
    sqlx::query("UPDATE orders SET status = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn order_transitions_follow_the_table(pool: MySqlPool) {
    let f = order_with_items(&pool, 1).await;
    let id = f.order_id;
    for &from in OrderStatus::ALL {
        for &to in OrderStatus::ALL {
            force_order(&pool, id, from).await;
            let events_before = count(&pool, "SELECT COUNT(*) FROM order_events").await;
            let result = orders::transition(&pool, id, from, to, "test", Some("why")).await;
            let now = orders::status(&mut pool.acquire().await.unwrap(), id).await.unwrap().unwrap();
            if from.can_become(to) {
                result.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                assert_eq!(now, to);
                assert_eq!(count(&pool, "SELECT COUNT(*) FROM order_events").await, events_before + 1);
            } else {
                assert!(matches!(result, Err(StoreError::IllegalOrderTransition { .. })), "{from} -> {to}");
                assert_eq!(now, from);
                assert_eq!(count(&pool, "SELECT COUNT(*) FROM order_events").await, events_before);
            }
        }
    }
    force_order(&pool, id, OrderStatus::Pending).await;
    orders::transition(&pool, id, OrderStatus::Pending, OrderStatus::Paid, "test", None).await.unwrap();
    let paid_at: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT paid_at FROM orders WHERE id = ?").bind(id).fetch_one(&pool).await.unwrap();
    assert!(paid_at.is_some());
    let err = orders::transition(&pool, id, OrderStatus::Pending, OrderStatus::Paid, "test", None).await.unwrap_err();
    assert!(matches!(err, StoreError::OrderConflict { expected: OrderStatus::Pending, .. }), "{err}");
}

// ---------------------------------------------------------------- outbox and events

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn outbox_rows_are_due_until_consumed_and_the_timeline_reads_in_order(pool: MySqlPool) {
    let f = order_with_items(&pool, 2).await;
    for &id in &f.item_ids {
        items::transition(
            &pool,
            &ItemChange::new(id, ItemStatus::AwaitingPayment, ItemStatus::Enrolling, "sepay-webhook"),
        )
        .await
        .unwrap();
    }
    let mut conn = pool.acquire().await.unwrap();
    let rows = outbox::due(&mut conn, 0, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|m| m.queue == Queue::Enroll));
    // Rows younger than the grace period are left to the relay that wrote them.
    assert!(outbox::due(&mut conn, 3600, 0, 10).await.unwrap().is_empty());
    // A publish nobody saw fail is given the republish interval to be consumed.
    assert!(outbox::due(&mut conn, 0, 3600, 10).await.unwrap().is_empty());
    // One the relay saw fail is due at once, until the sweeper publishes it.
    outbox::record_publish_failure(&mut conn, rows[0].id, "connection refused").await.unwrap();
    assert_eq!(outbox::due(&mut conn, 0, 3600, 10).await.unwrap(), vec![rows[0].clone()]);
    outbox::mark_published(&mut conn, &[rows[0].id]).await.unwrap();
    assert!(outbox::due(&mut conn, 0, 3600, 10).await.unwrap().is_empty());

    // The stage leaving `enrolling` consumed the item's enroll row, and wrote a deliver row.
    items::transition(&pool, &ItemChange::new(f.item_ids[0], ItemStatus::Enrolling, ItemStatus::Enrolled, "enroll"))
        .await
        .unwrap();
    let due = outbox::due(&mut conn, 0, 0, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|m| (m.queue, m.body.clone())).collect::<Vec<_>>(),
        vec![
            (Queue::Enroll, format!("{{\"item_id\":{}}}", f.item_ids[1])),
            (Queue::Deliver, format!("{{\"item_id\":{}}}", f.item_ids[0]))
        ]
    );

    let timeline = events::for_order(&mut conn, f.order_id).await.unwrap();
    let kinds: Vec<_> = timeline.iter().map(|e| (e.kind.as_str(), e.to_status.as_deref())).collect();
    assert_eq!(
        kinds,
        vec![
            ("order_created", Some("pending")),
            ("item_status", Some("enrolling")),
            ("item_status", Some("enrolling")),
            ("item_status", Some("enrolled"))
        ]
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn text_is_stored_verbatim(pool: MySqlPool) {
    // Hostile strings go through bound parameters and come back byte for byte.
    let title = "Rust'; DROP TABLE orders; -- \u{1}\u{7f} \"cơ bản\" 🎓";
    let slug = CourseSlug::parse("hostile").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    catalog::insert(
        &mut conn,
        &catalog::NewCourse {
            slug: &slug,
            title,
            price: Vnd::new(1).unwrap(),
            source: "s3://b/p/",
            delivery_mode: coursedrop::adapters::source::DeliveryMode::Copy,
            lms_course_id: None,
        },
    )
    .await
    .unwrap();
    let got = catalog::by_slug(&mut conn, &slug).await.unwrap().unwrap();
    assert_eq!(got.title, title);
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'orders'"
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_deadlock_victim_runs_again_and_both_transactions_succeed(pool: MySqlPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let f = order_with_items(&pool, 2).await;
    let (a, b) = (f.item_ids[0], f.item_ids[1]);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tries = Arc::new(AtomicU32::new(0));
    // Two transactions take the same two rows in opposite orders: InnoDB must pick a victim.
    let run = |first: u64, second: u64| {
        let (pool, barrier, tries) = (pool.clone(), barrier.clone(), tries.clone());
        tokio::spawn(async move {
            let mut own_tries = 0;
            store::retry_deadlocks(|| {
                own_tries += 1;
                let (pool, barrier, tries, try_no) = (pool.clone(), barrier.clone(), tries.clone(), own_tries);
                async move {
                    tries.fetch_add(1, Ordering::SeqCst);
                    let mut tx = pool.begin().await?;
                    sqlx::query("UPDATE order_items SET attempts = attempts + 1 WHERE id = ?")
                        .bind(first)
                        .execute(&mut *tx)
                        .await?;
                    if try_no == 1 {
                        barrier.wait().await;
                    }
                    sqlx::query("UPDATE order_items SET attempts = attempts + 1 WHERE id = ?")
                        .bind(second)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok::<(), StoreError>(())
                }
            })
            .await
        })
    };
    let (one, two) = (run(a, b), run(b, a));
    one.await.unwrap().unwrap();
    two.await.unwrap().unwrap();
    assert_eq!(tries.load(Ordering::SeqCst), 3, "exactly one transaction was a victim and ran again");
    let attempts: Vec<u32> =
        sqlx::query_scalar("SELECT attempts FROM order_items ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(attempts, vec![2, 2], "both transactions' work is there, once");
}

/// A payment's transaction is begun by a script, which sqlx cannot roll back for us. Dropped
/// while open (a request cancelled between its two round trips), its connection is closed
/// instead of going back to the pool, so the server rolls it back and the order's lock is free
/// at once for the next payment. Finished by a rollback, the connection is used again.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_payment_transaction_dropped_open_leaves_no_lock_behind(pool: MySqlPool) {
    let (code, _) = coursedrop::testing::pending_order(&pool, &[250_000], 30).await;
    let url = coursedrop::testing::database_url_of(&pool).await;
    // One connection: whichever is handed out next tells whether the last went back.
    let one = store::connect(&url, 1).await.unwrap();
    let connection_id = async |c: &mut sqlx::pool::PoolConnection<sqlx::MySql>| -> u64 {
        sqlx::query_scalar("SELECT CONNECTION_ID()").fetch_one(&mut **c).await.unwrap()
    };
    let alive = async |id: u64| -> bool {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
            == 1
    };

    let mut first = one.acquire().await.unwrap();
    let dropped = connection_id(&mut first).await;
    let (tx, order, _) = store::payments::begin_locking(&mut first, &code, None).await.unwrap();
    assert_eq!(order.expect("the order").items.len(), 1);
    drop(tx);
    drop(first);
    let mut waited = 0;
    while alive(dropped).await && waited < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    assert!(!alive(dropped).await, "the connection of a transaction dropped open was closed");

    let mut next = one.acquire().await.unwrap();
    let reused = connection_id(&mut next).await;
    assert_ne!(reused, dropped);
    // Were the dropped transaction alive, this would wait for its lock and fail.
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1").execute(&mut *next).await.unwrap();
    let (tx, order, _) = store::payments::begin_locking(&mut next, &code, None).await.unwrap();
    assert_eq!(order.expect("the order").status, OrderStatus::Pending);
    tx.rollback().await.unwrap();
    drop(next);
    let mut again = one.acquire().await.unwrap();
    assert_eq!(connection_id(&mut again).await, reused, "a connection rolled back goes back to the pool");
}

/// The webhook keeps its connections between requests: a kept connection is used again with
/// no round trip of the pool's (sqlx pings every connection it takes back), and the pool's
/// other users always find one, since one fewer than the pool holds are kept.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn kept_connections_are_used_again_without_a_ping_and_never_starve_the_pool(pool: MySqlPool) {
    use coursedrop::store::kept::KeptConnections;
    let relay = coursedrop::testing::RoundTrips::in_front_of(&pool).await;
    let db = KeptConnections::new(store::connect(&relay.url, 3).await.unwrap());
    let connection_id = async |c: &mut sqlx::pool::PoolConnection<sqlx::MySql>| -> u64 {
        sqlx::query_scalar("SELECT CONNECTION_ID()").fetch_one(&mut **c).await.unwrap()
    };
    let mut a = db.get().await.unwrap();
    let first = connection_id(&mut a).await;
    a.keep();
    let before = relay.so_far();
    for _ in 0..3 {
        let mut again = db.get().await.unwrap();
        assert_eq!(connection_id(&mut again).await, first);
        again.keep();
    }
    assert_eq!(relay.so_far() - before, 3, "three statements, and no ping");

    // Two out at once through here, one fewer than the pool holds: the pool's other users
    // still find one, and a third caller waits its turn and gets the first handed back.
    let (mut x, y) = (db.get().await.unwrap(), db.get().await.unwrap());
    let x_id = connection_id(&mut x).await;
    let other = tokio::time::timeout(std::time::Duration::from_secs(2), db.pool().acquire()).await;
    assert!(matches!(other, Ok(Ok(_))), "the pool's other users are not starved");
    drop(other);
    let third = db.get();
    tokio::pin!(third);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(200), &mut third).await.is_err(), "waits its turn");
    x.keep();
    let mut third = tokio::time::timeout(std::time::Duration::from_secs(2), third).await.unwrap().unwrap();
    assert_eq!(connection_id(&mut third).await, x_id, "the turn comes with the connection handed back");
    third.keep();
    y.keep();

    // A connection not handed back cleanly (an error, a cancelled request) is not kept.
    let mut dropped = db.get().await.unwrap();
    let dropped_id = connection_id(&mut dropped).await;
    drop(dropped);
    let mut next = db.get().await.unwrap();
    assert_ne!(connection_id(&mut next).await, dropped_id, "only what was handed back cleanly is kept");
}
