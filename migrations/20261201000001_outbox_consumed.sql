-- The outbox without a second write on the request path: the relay publishes after commit
-- and writes nothing when the publish succeeds. The stage that a row's message triggers
-- records, in its own transaction, that the row's work arrived (consumed_at: the item left
-- the status the message serves). The sweeper publishes again only rows nobody consumed in
-- time, and records when it did (published_at); a publish the relay saw fail is recorded
-- (publish_attempts, last_error) so the sweeper takes it at once.
ALTER TABLE outbox
    ADD COLUMN item_id BIGINT UNSIGNED NULL AFTER payload,
    ADD COLUMN consumed_at DATETIME(3) NULL AFTER published_at,
    DROP KEY ix_outbox_unpublished,
    -- The sweeper looks for unconsumed rows, oldest first.
    ADD KEY ix_outbox_unconsumed (consumed_at, created_at),
    -- A stage marks its item's rows consumed.
    ADD KEY ix_outbox_item (item_id, queue);

-- Every payload so far is {"item_id": n}.
UPDATE outbox SET item_id = CAST(JSON_VALUE(payload, '$.item_id') AS UNSIGNED);
-- A row the old relay marked published needed nothing more from the sweeper: keep it so.
UPDATE outbox SET consumed_at = published_at WHERE published_at IS NOT NULL;
