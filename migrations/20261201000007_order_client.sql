-- Who placed an order, as API Gateway saw the connection (never a header a client could
-- set): a cap on pending orders per client address keeps one client from filling the
-- database and the code space. And an index for the same cap per email.
ALTER TABLE orders
    ADD COLUMN client_ip VARCHAR(45) NULL AFTER lang,
    ADD KEY ix_orders_client_status (client_ip, status),
    ADD KEY ix_orders_email_status (email, status);
