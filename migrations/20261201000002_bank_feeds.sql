-- Payments from more than one bank feed (SePay, Casso), and found by more than the webhook:
-- a payment is keyed by its feed and that feed's own transaction id, and says how it arrived.
-- Every existing row came from SePay's webhook and keeps its id as text.
ALTER TABLE payments
    -- The column named the bank SePay reported (its "gateway" field); the feed now has the name.
    CHANGE COLUMN gateway bank VARCHAR(100) NULL,
    ADD COLUMN gateway VARCHAR(16) NOT NULL DEFAULT 'sepay' AFTER id,
    ADD COLUMN gateway_txn_id VARCHAR(64) NULL AFTER gateway,
    -- webhook | reconcile: a payment only reconciliation found means a webhook was missed.
    ADD COLUMN arrived_by VARCHAR(16) NOT NULL DEFAULT 'webhook' AFTER raw_payload;

UPDATE payments SET gateway_txn_id = CAST(sepay_id AS CHAR);

ALTER TABLE payments
    MODIFY COLUMN gateway_txn_id VARCHAR(64) NOT NULL,
    ALTER COLUMN gateway DROP DEFAULT,
    DROP KEY uq_payments_sepay_id,
    DROP COLUMN sepay_id,
    -- A redelivered webhook, or a transfer both the webhook and reconciliation saw, hits
    -- this key and changes nothing.
    ADD UNIQUE KEY uq_payments_gateway_txn (gateway, gateway_txn_id),
    ADD CONSTRAINT ck_payments_gateway CHECK (gateway IN ('sepay', 'casso')),
    ADD CONSTRAINT ck_payments_arrived_by CHECK (arrived_by IN ('webhook', 'reconcile'));

-- Where each feed's reconciliation has got to. SePay: the next `since_id`; Casso: the first
-- day (Vietnam time) still to list. A cursor moves only past transfers already committed.
CREATE TABLE reconcile_cursors (
    gateway        VARCHAR(16)  NOT NULL PRIMARY KEY,
    cursor_value   VARCHAR(64)  NOT NULL,
    last_pass_at   DATETIME(3)  NOT NULL,
    last_listed    INT UNSIGNED NOT NULL,
    last_recorded  INT UNSIGNED NOT NULL,
    CONSTRAINT ck_reconcile_cursors_gateway CHECK (gateway IN ('sepay', 'casso'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
