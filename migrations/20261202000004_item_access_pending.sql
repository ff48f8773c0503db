-- The address an access move is giving the item's folder to, written before Drive is asked
-- and cleared when the move is recorded: if the move dies in between, a refund still finds
-- and removes that address's permission.
ALTER TABLE order_items ADD COLUMN access_pending_email VARCHAR(254) NULL AFTER access_changes;
