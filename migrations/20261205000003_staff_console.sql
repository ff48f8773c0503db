-- The seller's console: staff accounts, one-time sign-in links, sessions, and the audit of
-- what staff did that belongs to no order (catalog, coupons, staff, sign-ins).
--
-- Secrets are never stored: a link's token and a session's id are kept as their SHA-256, so
-- a copy of the database signs nobody in.
CREATE TABLE staff (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email        VARCHAR(254)    NOT NULL,
    role         VARCHAR(16)     NOT NULL,
    created_by   VARCHAR(64)     NOT NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    -- Set by `staff disable`: the account signs in no more and its sessions end at once.
    disabled_at  DATETIME(3)     NULL,
    UNIQUE KEY uq_staff_email (email),
    CONSTRAINT ck_staff_role CHECK (role IN ('owner', 'support'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE staff_sign_in_links (
    token_hash   BINARY(32)      NOT NULL PRIMARY KEY,
    staff_id     BIGINT UNSIGNED NOT NULL,
    expires_at   DATETIME(3)     NOT NULL,
    -- Single use: the first redemption sets it, in the same statement that checks it.
    used_at      DATETIME(3)     NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY ix_links_staff (staff_id),
    CONSTRAINT fk_links_staff FOREIGN KEY (staff_id) REFERENCES staff (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every request for a link, staff or not, by the SHA-256 of the address and of the client:
-- what the rate limits count. Neither the address nor the client's IP is kept in the clear.
CREATE TABLE staff_sign_in_requests (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    address_hash BINARY(32)      NOT NULL,
    client_hash  BINARY(32)      NOT NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY ix_requests_address (address_hash, created_at),
    KEY ix_requests_client (client_hash, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE staff_sessions (
    id_hash      BINARY(32)      NOT NULL PRIMARY KEY,
    staff_id     BIGINT UNSIGNED NOT NULL,
    -- The form token every state-changing request must carry (synchronizer token).
    csrf_token   CHAR(43)        NOT NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    last_seen_at DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    revoked_at   DATETIME(3)     NULL,
    KEY ix_sessions_staff (staff_id),
    CONSTRAINT fk_sessions_staff FOREIGN KEY (staff_id) REFERENCES staff (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What staff did outside any order. Changes to an order go to its order_events as ever,
-- with the actor `staff:<email>`.
CREATE TABLE staff_audit (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    actor        VARCHAR(64)     NOT NULL,
    action       VARCHAR(40)     NOT NULL,
    subject      VARCHAR(254)    NULL,
    detail       TEXT            NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY ix_audit_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- "Mark handled" on a transfer that matched no order (a refund made at the bank, a transfer
-- that was not a purchase): it leaves the problems list; the row and its money stay.
ALTER TABLE payments
    ADD COLUMN handled_by VARCHAR(64) NULL,
    ADD COLUMN handled_at DATETIME(3) NULL,
    ADD COLUMN handled_note VARCHAR(255) NULL;

-- The orders list searches and pages by these without scanning 100,000 rows.
-- (The email is found by ix_orders_email_status.)
ALTER TABLE orders
    ADD KEY ix_orders_phone (phone),
    ADD KEY ix_orders_total (total_vnd),
    ADD KEY ix_orders_created (created_at, id),
    ADD KEY ix_orders_paid (paid_at),
    -- The dashboard counts the orders that need an operator.
    ADD KEY ix_orders_attention (attention(16));
-- The dashboard's time from payment to email reads the items emailed in 30 days.
ALTER TABLE order_items ADD KEY ix_items_email_sent (email_sent_at);
ALTER TABLE payments ADD KEY ix_payments_bank_reference (bank_reference), ADD KEY ix_payments_reference (reference_code);
