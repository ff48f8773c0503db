-- coursedrop initial schema (MySQL 8 / MariaDB 10.11, utf8mb4).
-- Money is integer VND in BIGINT columns. Timestamps are UTC, millisecond precision.

CREATE TABLE courses (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    slug          VARCHAR(64)     NOT NULL,
    title         VARCHAR(255)    NOT NULL,
    price_vnd     BIGINT          NOT NULL,
    -- The seller's storage prefix, e.g. s3://bucket/courses/rust-101/
    source        VARCHAR(1024)   NOT NULL,
    -- Course id in the seller's LMS, for enrollment providers that need one (Moodle).
    lms_course_id VARCHAR(64)     NULL,
    active        BOOLEAN         NOT NULL DEFAULT TRUE,
    created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_courses_slug (slug),
    CONSTRAINT ck_courses_price CHECK (price_vnd >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE orders (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Always stored upper case; matches the SePay payment-code pattern.
    code             VARCHAR(40)     NOT NULL,
    email            VARCHAR(254)    NOT NULL,
    phone            VARCHAR(32)     NULL,
    lang             VARCHAR(8)      NOT NULL DEFAULT 'vi',
    total_vnd        BIGINT          NOT NULL,
    paid_vnd         BIGINT          NOT NULL DEFAULT 0,
    status           VARCHAR(16)     NOT NULL,
    -- Set when an operator must look at the order (payment after expiry, over-payment, ...).
    attention        VARCHAR(255)    NULL,
    idempotency_key  VARCHAR(128)    NULL,
    -- SHA-256 of the canonical request, to tell a retry from a different request under the same key.
    request_hash     CHAR(64)        NULL,
    expires_at       DATETIME(3)     NOT NULL,
    paid_at          DATETIME(3)     NULL,
    completed_at     DATETIME(3)     NULL,
    created_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_orders_code (code),
    UNIQUE KEY uq_orders_idempotency_key (idempotency_key),
    -- The sweeper expires pending orders past expires_at.
    KEY ix_orders_status_expires (status, expires_at),
    CONSTRAINT ck_orders_money CHECK (total_vnd >= 0 AND paid_vnd >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE order_items (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id          BIGINT UNSIGNED NOT NULL,
    course_id         BIGINT UNSIGNED NOT NULL,
    -- The price when the order was made; later catalog changes do not touch it.
    price_vnd         BIGINT          NOT NULL,
    status            VARCHAR(20)     NOT NULL,
    -- For status = failed: the stage that failed (enroll, deliver, finalize) and why.
    failed_stage      VARCHAR(16)     NULL,
    last_error        TEXT            NULL,
    attempts          INT UNSIGNED    NOT NULL DEFAULT 0,
    -- Delivery lease: a crashed worker's item can be claimed again once it lapses.
    lease_owner       VARCHAR(64)     NULL,
    lease_until       DATETIME(3)     NULL,
    drive_folder_id   VARCHAR(128)    NULL,
    drive_link        VARCHAR(512)    NULL,
    files_total       INT UNSIGNED    NULL,
    files_done        INT UNSIGNED    NOT NULL DEFAULT 0,
    bytes_total       BIGINT UNSIGNED NULL,
    bytes_done        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    -- Delivery email: the Message-ID is fixed before sending so a re-send folds into the first.
    email_message_id  VARCHAR(255)    NULL,
    email_sent_at     DATETIME(3)     NULL,
    enrolling_at      DATETIME(3)     NULL,
    enrolled_at       DATETIME(3)     NULL,
    delivering_at     DATETIME(3)     NULL,
    delivered_at      DATETIME(3)     NULL,
    completed_at      DATETIME(3)     NULL,
    failed_at         DATETIME(3)     NULL,
    revoked_at        DATETIME(3)     NULL,
    created_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_items_order_course (order_id, course_id),
    -- Sweeps look for items stuck in a state for longer than the stage's deadline.
    KEY ix_items_status_updated (status, updated_at),
    CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT fk_items_course FOREIGN KEY (course_id) REFERENCES courses (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE payments (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- SePay's transaction id: a redelivered webhook hits this key and changes nothing.
    sepay_id         BIGINT          NOT NULL,
    -- NULL for a transfer that matched no order: it is kept for an operator to attach.
    order_id         BIGINT UNSIGNED NULL,
    transfer_type    VARCHAR(8)      NOT NULL,
    amount_vnd       BIGINT          NOT NULL,
    gateway          VARCHAR(100)    NULL,
    account_number   VARCHAR(64)     NULL,
    code             VARCHAR(64)     NULL,
    content          TEXT            NULL,
    reference_code   VARCHAR(128)    NULL,
    transaction_date VARCHAR(32)     NULL,
    -- The webhook body exactly as received.
    raw_payload      LONGTEXT        NOT NULL,
    received_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_payments_sepay_id (sepay_id),
    KEY ix_payments_order (order_id),
    CONSTRAINT fk_payments_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE delivered_files (
    id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    item_id             BIGINT UNSIGNED NOT NULL,
    -- Path relative to the course's source prefix (S3 keys are up to 1024 bytes).
    path                VARCHAR(1024)   NOT NULL,
    -- SHA-256 of path: a unique key on the path itself would exceed InnoDB's key length.
    path_sha256         BINARY(32)      NOT NULL,
    size_bytes          BIGINT UNSIGNED NOT NULL,
    md5                 CHAR(32)        NULL,
    drive_file_id       VARCHAR(128)    NULL,
    -- What a restarted job needs to resume an interrupted upload.
    upload_session_uri  TEXT            NULL,
    bytes_confirmed     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    completed_at        DATETIME(3)     NULL,
    created_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_files_item_path (item_id, path_sha256),
    CONSTRAINT fk_files_item FOREIGN KEY (item_id) REFERENCES order_items (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE outbox (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue         VARCHAR(32)     NOT NULL,
    payload       TEXT            NOT NULL,
    created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    published_at  DATETIME(3)     NULL,
    publish_attempts INT UNSIGNED NOT NULL DEFAULT 0,
    last_error    TEXT            NULL,
    -- The relay and the sweeper look for unpublished rows, oldest first.
    KEY ix_outbox_unpublished (published_at, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE order_events (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id     BIGINT UNSIGNED NOT NULL,
    item_id      BIGINT UNSIGNED NULL,
    kind         VARCHAR(40)     NOT NULL,
    from_status  VARCHAR(20)     NULL,
    to_status    VARCHAR(20)     NULL,
    -- Who or what made the change: a function name, the job's worker id, or operator:<name>.
    actor        VARCHAR(64)     NOT NULL,
    detail       TEXT            NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY ix_events_order (order_id, id),
    KEY ix_events_item (item_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
