-- Merchant Monitor, migration 0003: outreach actions.
-- A queued task has no due date yet: it gets one (from the contact standards) when it opens.
ALTER TABLE outreach_tasks MODIFY COLUMN due_date Nullable(Date);
-- The business day a task reached its manager (capacity is counted per manager and day).
ALTER TABLE outreach_tasks ADD COLUMN IF NOT EXISTS opened_date Nullable(Date) AFTER suggested_action;
