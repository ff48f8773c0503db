-- One payment reminder per unpaid order, sent by the sweeper exactly once: its Message-ID is
-- fixed before the first send (a retry after a crash carries the same one, and mail clients
-- fold the two), and reminder_sent_at is set in the transaction that holds the order's lock
-- while sending, so a payment arriving meanwhile waits and no paid order is reminded.
ALTER TABLE orders
    ADD COLUMN reminder_message_id VARCHAR(255) NULL AFTER client_ip,
    ADD COLUMN reminder_sent_at DATETIME(3) NULL AFTER reminder_message_id;
