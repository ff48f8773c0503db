-- The Drive permission finalize gave the buyer, as Drive returned it: a refund removes
-- access by this id. Matching permissions by email text can miss (Drive lists an account's
-- primary address, which need not be the one the buyer typed).
ALTER TABLE order_items ADD COLUMN drive_permission_id VARCHAR(128) NULL AFTER drive_link;
