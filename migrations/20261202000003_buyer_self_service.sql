-- Buyers fix their own delivery: the Google address an item's Drive access is given to can
-- be moved (access_email; NULL: the order's email), a few times per item (access_changes).
ALTER TABLE order_items
    ADD COLUMN access_email VARCHAR(254) NULL AFTER drive_permission_id,
    ADD COLUMN access_changes INT UNSIGNED NOT NULL DEFAULT 0 AFTER access_email;

-- Wrong guesses at an order's email, counted per order and per client address; after a
-- number of them in a window the scope is locked until locked_until. Nothing here names an
-- email: the scope is "order:<code>" or "client:<address>".
CREATE TABLE buyer_attempts (
    scope              VARCHAR(80)  NOT NULL PRIMARY KEY,
    failures           INT UNSIGNED NOT NULL,
    window_started_at  DATETIME(3)  NOT NULL,
    locked_until       DATETIME(3)  NULL
) ENGINE = InnoDB;
