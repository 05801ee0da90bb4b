-- 0003: one owner per disposal (issue 16).
-- `disposal` is NULL when nothing is disposed of after the item (a source that keeps its
-- originals, items finished before this migration), 'pending' from the `finish` after which the
-- item's owner moves or deletes the original, 'done' once it did.  A pending disposal stays
-- under the owner's lease (`owner`, `lease_until`, renewed by its heartbeat); another instance
-- takes it over only once that lease expired (the owner died between `finish` and disposal).
ALTER TABLE items ADD COLUMN disposal TEXT;

-- undisposed(): the pending disposals, few at any time.
CREATE INDEX items_disposal_pending ON items (flow, lease_until) WHERE disposal = 'pending';
