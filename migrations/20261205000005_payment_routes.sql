-- A payment route of an order's own: a payOS payment link (number = payOS's orderCode) or a
-- virtual account for exactly the order's amount (number = the account's number). A transfer
-- through it names its order whatever its text says.
--
-- One of each kind per order. `failed` keeps why a route could not be opened: the order is
-- then paid into the main account with its code, as before.
CREATE TABLE payment_routes (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id     BIGINT UNSIGNED NOT NULL,
    kind         VARCHAR(20)     NOT NULL,
    state        VARCHAR(10)     NOT NULL,
    number       VARCHAR(64)     NULL,
    -- The provider's id of it: payOS's paymentLinkId, SePay's order id.
    external_id  VARCHAR(64)     NULL,
    amount_vnd   BIGINT          NOT NULL,
    checkout_url VARCHAR(512)    NULL,
    qr_code      VARCHAR(1024)   NULL,
    account_name VARCHAR(128)    NULL,
    -- Why it failed to open, or why closing it failed last.
    reason       VARCHAR(512)    NULL,
    -- The provider's answer to opening it, as evidence.
    raw_answer   MEDIUMTEXT      NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    -- Last asked about by reconciliation (payOS has no list: one question per open link).
    checked_at   DATETIME(3)     NULL,
    closed_at    DATETIME(3)     NULL,
    UNIQUE KEY uq_routes_order_kind (order_id, kind),
    UNIQUE KEY uq_routes_number (kind, number),
    KEY ix_routes_state (state, kind, checked_at),
    CONSTRAINT fk_routes_order FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT ck_routes_kind CHECK (kind IN ('payos_link', 'virtual_account')),
    CONSTRAINT ck_routes_state CHECK (state IN ('open', 'closed', 'failed')),
    CONSTRAINT ck_routes_open_number CHECK (state <> 'open' OR number IS NOT NULL)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
