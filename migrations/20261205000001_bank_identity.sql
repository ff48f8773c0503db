-- One bank transfer, one credit, whatever feed reports it.
--
-- A seller may connect two feeds (SePay and Casso) to one account: each reports every transfer
-- under its own id, so (feed, feed_txn_id) alone counted a transfer twice. A transfer's own
-- identity is the bank's: the receiving account, the bank's reference, the direction and the
-- amount. The unique key below holds it; a row without a bank reference has NULL there and
-- is never refused by the key (it is checked against recent transfers instead, and held for
-- an operator when it looks like one already counted).
--
-- Only additions, so the previous release still runs on this schema: it writes NULL in the new
-- columns, which no key refuses.
ALTER TABLE payments
    -- The account paid into, without spaces: what the duplicate checks compare.
    ADD COLUMN bank_account VARCHAR(64) NULL AFTER account_number,
    -- The bank's reference (SePay referenceCode, Casso reference), trimmed; NULL when blank.
    ADD COLUMN bank_reference VARCHAR(128) NULL AFTER reference_code,
    -- NULL: an ordinary payment. held: it looks like a transfer already counted (another feed
    -- reported one with the same account, amount, direction and text moments apart, and one of
    -- the two had no bank reference to tell them apart): not counted until an operator releases
    -- it. released: an operator said it is a transfer of its own. dropped: an operator said it
    -- is the same transfer: kept as evidence, never counted.
    ADD COLUMN hold VARCHAR(16) NULL,
    ADD COLUMN held_duplicate_of BIGINT UNSIGNED NULL,
    ADD COLUMN hold_decided_by VARCHAR(64) NULL,
    ADD COLUMN hold_decided_at DATETIME(3) NULL,
    ADD CONSTRAINT ck_payments_hold CHECK (hold IN ('held', 'released', 'dropped'));

-- Rows written before this migration: every row gets its account; the bank reference is
-- copied to the first row of each transfer only. A later row with the same identity is a
-- transfer an earlier release counted twice: it keeps NULL, so the key below can be made and
-- the row stays exactly as it was (README: Upgrading to one credit per bank transfer).
UPDATE payments SET bank_account = NULLIF(REPLACE(account_number, ' ', ''), '');

UPDATE payments p
JOIN (
    SELECT MIN(id) AS id
    FROM payments
    WHERE NULLIF(TRIM(reference_code), '') IS NOT NULL AND bank_account IS NOT NULL
    GROUP BY bank_account, TRIM(reference_code), transfer_type, amount_vnd
) first_sighting ON first_sighting.id = p.id
SET p.bank_reference = TRIM(p.reference_code);

ALTER TABLE payments
    ADD UNIQUE KEY uq_payments_bank_transfer (bank_account, bank_reference, transfer_type, amount_vnd),
    -- A transfer that matches no order is compared with the recent unmatched ones into the
    -- same account of the same amount (a matched one, with its order's payments).
    ADD KEY ix_payments_unmatched_like (bank_account, amount_vnd, order_id, received_at);

-- A transfer reported again by another feed (its webhook or its reconciler): evidence, never
-- money. Its own (feed, id) key makes that feed's redeliveries a single read, as a payment's.
CREATE TABLE payment_sightings (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    payment_id   BIGINT UNSIGNED NOT NULL,
    feed         VARCHAR(16)     NOT NULL,
    feed_txn_id  VARCHAR(64)     NOT NULL,
    arrived_by   VARCHAR(16)     NOT NULL,
    raw_payload  LONGTEXT        NOT NULL,
    seen_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_sightings_feed_txn (feed, feed_txn_id),
    KEY ix_sightings_payment (payment_id),
    CONSTRAINT fk_sightings_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
