-- A studio's web origins (issue 14): canonical origins separated by spaces
-- (an origin never holds one); empty allows only the City-wide ones.
ALTER TABLE studios ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
