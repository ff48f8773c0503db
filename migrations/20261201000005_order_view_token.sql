-- A random token for the buyer's status view. Order codes are what the buyer types in the
-- transfer text, so they are short (CD + 8 digits) and guessable; the view shows course
-- titles, amounts and the Drive folder's link. The page's address and the API carry the token,
-- the transfer text keeps the code.
--
-- NULL-able so the previous release's INSERT still works during a deploy (its orders have no
-- status view; payment and delivery are unaffected). Orders placed before this release get a
-- token here: SQL has no portable CSPRNG (RANDOM_BYTES needs MariaDB 10.10), so it is a digest
-- of UUID(), RAND() and the row: not guessable from the code, which is what matters. New
-- orders get 128 random bits from the application.
ALTER TABLE orders ADD COLUMN view_token CHAR(32) NULL AFTER code;
UPDATE orders SET view_token = LEFT(SHA2(CONCAT(UUID(), '/', RAND(), '/', id, '/', code), 256), 32)
 WHERE view_token IS NULL;
ALTER TABLE orders ADD UNIQUE KEY uq_orders_view_token (view_token);
