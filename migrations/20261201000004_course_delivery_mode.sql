-- How a course reaches the buyer. `copy`: a folder of the buyer's own, the course copied into
-- it (from S3 by upload, from the seller's Drive server-side). `share`: no copy at all, the
-- buyer gets read access to the seller's Drive folder itself, so only a Drive source can be
-- shared. Existing courses keep what they had: copy.
ALTER TABLE courses
    ADD COLUMN delivery_mode VARCHAR(8) NOT NULL DEFAULT 'copy' AFTER source,
    ADD CONSTRAINT ck_courses_delivery_mode
        CHECK (delivery_mode = 'copy' OR (delivery_mode = 'share' AND source LIKE 'drive://%'));
