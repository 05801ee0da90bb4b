-- 0001: items, step runs, paused flows, source cursors.
-- ${serial} and ${real} are filled in per dialect (see ferryman.journal.rows.Dialect).
-- Times are seconds since the epoch; meta, files and outputs are JSON text.

CREATE TABLE items (
    seq ${serial},
    id TEXT NOT NULL UNIQUE,
    flow TEXT NOT NULL,
    key TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    files TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_type TEXT,
    next_attempt_at ${real},
    owner TEXT,
    lease_until ${real},
    created_at ${real} NOT NULL,
    updated_at ${real} NOT NULL
);

-- Promise 2: one item per source key and flow, forever.
CREATE UNIQUE INDEX items_flow_key ON items (flow, key);
-- unfinished(), counts(), history(state=...).
CREATE INDEX items_state_flow ON items (state, flow, seq);
-- history(flow=...).
CREATE INDEX items_flow_seq ON items (flow, seq);

CREATE TABLE step_runs (
    seq ${serial},
    item_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    name TEXT NOT NULL,
    started_at ${real} NOT NULL,
    ended_at ${real},
    outcome TEXT NOT NULL,
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX step_runs_item ON step_runs (item_id, seq);

CREATE TABLE paused_flows (
    flow TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_at ${real} NOT NULL
);

CREATE TABLE cursors (
    flow TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at ${real} NOT NULL,
    PRIMARY KEY (flow, name)
);
