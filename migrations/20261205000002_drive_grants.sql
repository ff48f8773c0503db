-- Every Drive permission we ever gave for an item, and whether we created it.
--
-- A refund or a move removes exactly the permissions we created for the item and no other:
-- not one the seller gave by hand, nor an editor role, nor another buyer's. A permission the
-- address already had when we shared (`created_by_us = 0`) is recorded, never removed. One we
-- created that another item also holds (a buyer with two paid orders of a course delivered
-- by sharing the seller's folder) is removed only when the last item holding it lets go.
--
-- `permission_id` NULL: we were about to ask Drive when the row was written (a crash may have
-- left a permission Drive made and we never heard of): a refund looks it up by address.
CREATE TABLE drive_grants (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    item_id        BIGINT UNSIGNED NOT NULL,
    folder_id      VARCHAR(128)    NOT NULL,
    email          VARCHAR(254)    NOT NULL,
    permission_id  VARCHAR(128)    NULL,
    created_by_us  TINYINT(1)      NOT NULL,
    granted_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    removed_at     DATETIME(3)     NULL,
    UNIQUE KEY uq_grants_item_address (item_id, folder_id, email),
    KEY ix_grants_folder_permission (folder_id, permission_id),
    CONSTRAINT fk_grants_item FOREIGN KEY (item_id) REFERENCES order_items (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- When a move began: one that died long ago no longer blocks the next.
ALTER TABLE order_items ADD COLUMN access_pending_at DATETIME(3) NULL AFTER access_pending_email;

-- Items shared before this migration: the permission finalize (or a move) kept, for the
-- address that has the access, and the address a move that stopped was giving it to. The
-- earlier releases kept only these; they are taken as ours, as those releases took them.
INSERT IGNORE INTO drive_grants (item_id, folder_id, email, permission_id, created_by_us)
SELECT i.id, i.drive_folder_id, COALESCE(i.access_email, o.email), i.drive_permission_id, 1
FROM order_items i JOIN orders o ON o.id = i.order_id
WHERE i.drive_folder_id IS NOT NULL AND i.drive_permission_id IS NOT NULL AND i.status <> 'revoked';

INSERT IGNORE INTO drive_grants (item_id, folder_id, email, permission_id, created_by_us)
SELECT i.id, i.drive_folder_id, i.access_pending_email, NULL, 1
FROM order_items i
WHERE i.drive_folder_id IS NOT NULL AND i.access_pending_email IS NOT NULL AND i.status <> 'revoked';
