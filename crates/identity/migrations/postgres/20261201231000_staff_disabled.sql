-- A disabled staff user cannot sign in or refresh, and its tokens were ended when it was
-- disabled; set by `PATCH /v1/admin/users/{id}` with `disabled`, cleared by enabling it again.
ALTER TABLE staff_users ADD COLUMN disabled_at TIMESTAMPTZ;
