-- A refund takes the buyer out of the seller's LMS too, not only out of Drive. The refund sets
-- `unenroll_pending` (with an outbox row for the enroll queue) in its own transaction; the
-- enroll function calls the provider's unenroll and clears it, recording `unenrolled_at`, or
-- flags the order for an operator when the LMS refuses. Only adds columns.
ALTER TABLE order_items
    ADD COLUMN unenroll_pending BOOLEAN NOT NULL DEFAULT FALSE AFTER revoked_at,
    ADD COLUMN unenrolled_at DATETIME(3) NULL AFTER unenroll_pending;
