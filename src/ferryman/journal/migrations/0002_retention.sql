-- 0002: retention (`ferryman journal prune`, `[ferryman] keep_history`).
-- A pruned item leaves a tombstone: the digest of its (flow, key), so that admission keeps
-- refusing the key (promise 2) after the item's row and step runs are gone.
-- ${compact} is WITHOUT ROWID on SQLite (the primary key is the table: no second copy).

CREATE TABLE pruned_keys (
    flow TEXT NOT NULL,
    key_digest TEXT NOT NULL,
    state TEXT NOT NULL,
    pruned_at ${real} NOT NULL,
    PRIMARY KEY (flow, key_digest)
)${compact};

-- prune(): finished items by state and age.
CREATE INDEX items_state_updated ON items (state, updated_at);
