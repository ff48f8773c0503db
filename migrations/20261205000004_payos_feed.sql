-- payOS, a third feed: its signed webhooks are recorded as SePay's and Casso's are, with feed
-- 'payos' and the bank's reference as the transfer's identity across feeds.
ALTER TABLE payments DROP CONSTRAINT ck_payments_feed;
ALTER TABLE payments ADD CONSTRAINT ck_payments_feed CHECK (feed IN ('sepay', 'casso', 'payos'));
