-- Discount codes. A use is reserved when an order is placed (`uses` counts the orders that
-- hold one: pending, paid, completed or refunded) and freed when the order expires or is
-- cancelled. The reservation is one UPDATE that checks every rule, so the last use can't be
-- taken twice.
CREATE TABLE coupons (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Always stored upper case: buyers type it in any case.
    code            VARCHAR(32)     NOT NULL,
    -- Exactly one of the two.
    percent_off     TINYINT UNSIGNED NULL,
    amount_off_vnd  BIGINT          NULL,
    -- NULL: unlimited.
    max_uses        INT UNSIGNED    NULL,
    uses            INT UNSIGNED    NOT NULL DEFAULT 0,
    valid_from      DATETIME(3)     NULL,
    valid_until     DATETIME(3)     NULL,
    active          BOOLEAN         NOT NULL DEFAULT TRUE,
    created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_coupons_code (code),
    CONSTRAINT ck_coupons_kind CHECK ((percent_off IS NULL) <> (amount_off_vnd IS NULL)),
    CONSTRAINT ck_coupons_percent CHECK (percent_off IS NULL OR percent_off BETWEEN 1 AND 100),
    CONSTRAINT ck_coupons_amount CHECK (amount_off_vnd IS NULL OR amount_off_vnd > 0),
    CONSTRAINT ck_coupons_uses CHECK (max_uses IS NULL OR uses <= max_uses),
    CONSTRAINT ck_coupons_window CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A coupon with rows here takes off only the price of these courses; with none, of any.
CREATE TABLE coupon_courses (
    coupon_id  BIGINT UNSIGNED NOT NULL,
    course_id  BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (coupon_id, course_id),
    CONSTRAINT fk_coupon_courses_coupon FOREIGN KEY (coupon_id) REFERENCES coupons (id),
    CONSTRAINT fk_coupon_courses_course FOREIGN KEY (course_id) REFERENCES courses (id)
) ENGINE = InnoDB;

-- The order keeps the price it was placed with: its items their catalog prices, the order
-- its discount, and total_vnd = the items' sum - discount_vnd. NULL-able and defaulted so
-- the previous release's INSERT still works during a deploy.
ALTER TABLE orders
    ADD COLUMN coupon_id BIGINT UNSIGNED NULL AFTER total_vnd,
    ADD COLUMN discount_vnd BIGINT NOT NULL DEFAULT 0 AFTER coupon_id,
    ADD CONSTRAINT fk_orders_coupon FOREIGN KEY (coupon_id) REFERENCES coupons (id),
    ADD CONSTRAINT ck_orders_discount CHECK (discount_vnd >= 0);
