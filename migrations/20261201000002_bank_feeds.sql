-- Payments from more than one bank feed (SePay, Casso), and found by more than the webhook:
-- a payment is keyed by its feed and that feed's own transaction id, and says how it arrived.
-- Every existing row came from SePay's webhook: it becomes feed 'sepay', its id kept as text.
--
-- Only additions, so the previous release still runs on this schema (README: Rolling back):
-- `gateway` keeps SePay's name for the bank, and `sepay_id` stays (now NULL for other feeds)
-- with its unique key, which still deduplicates SePay rows whichever release wrote them.
ALTER TABLE payments
    ADD COLUMN feed VARCHAR(16) NOT NULL DEFAULT 'sepay' AFTER id,
    ADD COLUMN feed_txn_id VARCHAR(64) NULL AFTER feed,
    MODIFY COLUMN sepay_id BIGINT NULL,
    -- webhook | reconcile: a payment only reconciliation found means a webhook was missed.
    ADD COLUMN arrived_by VARCHAR(16) NOT NULL DEFAULT 'webhook' AFTER raw_payload;

UPDATE payments SET feed_txn_id = CAST(sepay_id AS CHAR);

ALTER TABLE payments
    -- A redelivered webhook, or a transfer both the webhook and reconciliation saw, hits
    -- this key and changes nothing. (A row the previous release writes has no feed_txn_id;
    -- uq_payments_sepay_id guards it.)
    ADD UNIQUE KEY uq_payments_feed_txn (feed, feed_txn_id),
    ADD CONSTRAINT ck_payments_feed CHECK (feed IN ('sepay', 'casso')),
    ADD CONSTRAINT ck_payments_arrived_by CHECK (arrived_by IN ('webhook', 'reconcile'));

-- Where each feed's reconciliation has got to. SePay: the next `since_id`; Casso: the last
-- day (Vietnam time) with a committed transfer. A cursor moves only past committed transfers.
CREATE TABLE reconcile_cursors (
    feed           VARCHAR(16)  NOT NULL PRIMARY KEY,
    cursor_value   VARCHAR(64)  NOT NULL,
    last_pass_at   DATETIME(3)  NOT NULL,
    last_listed    INT UNSIGNED NOT NULL,
    last_recorded  INT UNSIGNED NOT NULL,
    CONSTRAINT ck_reconcile_cursors_feed CHECK (feed IN ('sepay', 'casso'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
