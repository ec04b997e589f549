-- Real providers: extra headers, timeouts and a sealed (AEAD-encrypted) API key.
-- api_key holds nonce || ciphertext; api_key_hint its last 4 characters.

ALTER TABLE providers ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
ALTER TABLE providers ADD COLUMN connect_timeout_ms INTEGER;
ALTER TABLE providers ADD COLUMN first_byte_timeout_ms INTEGER;
ALTER TABLE providers ADD COLUMN total_timeout_ms INTEGER;
ALTER TABLE providers ADD COLUMN api_key BLOB;
ALTER TABLE providers ADD COLUMN api_key_hint TEXT NOT NULL DEFAULT '';
ALTER TABLE providers ADD COLUMN api_key_update_ms INTEGER;
