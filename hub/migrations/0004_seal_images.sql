-- Seal images (印模, issue 4): the picture each seal shows, kept with the seal. The seal
-- record's pictureDigest is the SHA-256 of `image`. Seals stored before this migration have
-- no image (their pictureDigest was a placeholder), so both columns stay NULL for them.
ALTER TABLE seals ADD COLUMN image BYTEA;
ALTER TABLE seals ADD COLUMN image_media_type TEXT
    CHECK (image_media_type IN ('image/png', 'image/svg+xml'));
ALTER TABLE seals ADD CONSTRAINT seals_image_has_type
    CHECK ((image IS NULL) = (image_media_type IS NULL));
