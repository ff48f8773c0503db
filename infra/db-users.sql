-- One MySQL user per function, each with only what it reads and writes. Applied by
-- `coursedrop-admin db-users` (production: infra/db-users, after `make migrate`) and by the
-- local stack (`make demo`, `make dev`), which run every function as its own user.
--
-- `{database}` is the schema; `{suffix}` is empty in production (the local stack gives each
-- fresh database its own users). Passwords are set by the runner, never written here. Run it
-- again after a migration that adds a table a function needs: it is idempotent.
--
-- A locking read (SELECT … FOR UPDATE) needs UPDATE on its table as well as SELECT.

-- create-order: the buyer page, POST /orders, POST /quote, the order view. Never payments,
-- never the outbox, never Drive access; of an order it can change only who placed it, and of
-- a coupon only its count of uses.
CREATE USER IF NOT EXISTS 'cd_create_order{suffix}'@'%';
GRANT SELECT ON `{database}`.courses TO 'cd_create_order{suffix}'@'%';
GRANT SELECT ON `{database}`.coupon_courses TO 'cd_create_order{suffix}'@'%';
GRANT SELECT, UPDATE (uses) ON `{database}`.coupons TO 'cd_create_order{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE (client_ip) ON `{database}`.orders TO 'cd_create_order{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.order_items TO 'cd_create_order{suffix}'@'%';
GRANT INSERT ON `{database}`.order_events TO 'cd_create_order{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.payment_routes TO 'cd_create_order{suffix}'@'%';

-- bank-webhook: records payments (and other feeds' sightings of them), pays orders, moves
-- their items into enrollment with their outbox rows.
CREATE USER IF NOT EXISTS 'cd_bank_webhook{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.payments TO 'cd_bank_webhook{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.payment_sightings TO 'cd_bank_webhook{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_bank_webhook{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_bank_webhook{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_bank_webhook{suffix}'@'%';
GRANT INSERT ON `{database}`.order_events TO 'cd_bank_webhook{suffix}'@'%';
GRANT SELECT ON `{database}`.payment_routes TO 'cd_bank_webhook{suffix}'@'%';

-- reconcile: what the webhook does, and its cursors.
CREATE USER IF NOT EXISTS 'cd_reconcile{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.payments TO 'cd_reconcile{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.payment_sightings TO 'cd_reconcile{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_reconcile{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_reconcile{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_reconcile{suffix}'@'%';
GRANT INSERT ON `{database}`.order_events TO 'cd_reconcile{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.payment_routes TO 'cd_reconcile{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.reconcile_cursors TO 'cd_reconcile{suffix}'@'%';

-- enroll: an item into (and, after a refund, out of) the seller's LMS.
CREATE USER IF NOT EXISTS 'cd_enroll{suffix}'@'%';
GRANT SELECT ON `{database}`.courses TO 'cd_enroll{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_enroll{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_enroll{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_enroll{suffix}'@'%';
GRANT INSERT ON `{database}`.order_events TO 'cd_enroll{suffix}'@'%';

-- deliver (the Fargate job): an item's files into its Drive folder.
CREATE USER IF NOT EXISTS 'cd_deliver{suffix}'@'%';
GRANT SELECT ON `{database}`.courses TO 'cd_deliver{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_deliver{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_deliver{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.delivered_files TO 'cd_deliver{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_deliver{suffix}'@'%';
GRANT INSERT ON `{database}`.order_events TO 'cd_deliver{suffix}'@'%';

-- finalize: shares an item's folder, emails the link, completes it; takes back what a
-- refund could not.
CREATE USER IF NOT EXISTS 'cd_finalize{suffix}'@'%';
GRANT SELECT ON `{database}`.courses TO 'cd_finalize{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_finalize{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_finalize{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_finalize{suffix}'@'%';
GRANT INSERT ON `{database}`.order_events TO 'cd_finalize{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.drive_grants TO 'cd_finalize{suffix}'@'%';

-- self-service: a buyer's resend and access move, and the count of wrong guesses.
CREATE USER IF NOT EXISTS 'cd_self_service{suffix}'@'%';
GRANT SELECT ON `{database}`.courses TO 'cd_self_service{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_self_service{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_self_service{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.order_events TO 'cd_self_service{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.buyer_attempts TO 'cd_self_service{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.drive_grants TO 'cd_self_service{suffix}'@'%';

-- sweeper: expiry (an order's coupon use given back), reminders, stuck items, the outbox,
-- and forgetting old wrong-guess counts.
CREATE USER IF NOT EXISTS 'cd_sweeper{suffix}'@'%';
GRANT SELECT ON `{database}`.courses TO 'cd_sweeper{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.coupons TO 'cd_sweeper{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_sweeper{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_sweeper{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_sweeper{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.order_events TO 'cd_sweeper{suffix}'@'%';
GRANT SELECT, DELETE ON `{database}`.buyer_attempts TO 'cd_sweeper{suffix}'@'%';

-- console: the seller's staff. Reads everything an operator reads; changes what the CLI's
-- actions change (refunds, retries, resends, access moves, attaching or deciding payments,
-- the catalog and coupons), its own staff, links, sessions and audit. Never deletes an order,
-- a payment or an event.
CREATE USER IF NOT EXISTS 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.courses TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.coupons TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.coupon_courses TO 'cd_console{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.orders TO 'cd_console{suffix}'@'%';
GRANT SELECT ON `{database}`.payment_routes TO 'cd_console{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.order_items TO 'cd_console{suffix}'@'%';
GRANT SELECT, UPDATE ON `{database}`.payments TO 'cd_console{suffix}'@'%';
GRANT SELECT ON `{database}`.payment_sightings TO 'cd_console{suffix}'@'%';
GRANT SELECT ON `{database}`.reconcile_cursors TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.outbox TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.order_events TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.drive_grants TO 'cd_console{suffix}'@'%';
GRANT SELECT ON `{database}`.delivered_files TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.staff TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.staff_sign_in_links TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, DELETE ON `{database}`.staff_sign_in_requests TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT, UPDATE ON `{database}`.staff_sessions TO 'cd_console{suffix}'@'%';
GRANT SELECT, INSERT ON `{database}`.staff_audit TO 'cd_console{suffix}'@'%';
