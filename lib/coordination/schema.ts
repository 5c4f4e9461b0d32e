// Versioned migrations of the coordination database. A migration is applied once, in order, inside
// one transaction that also records its version in `schema_version`. Never edit a released step:
// append a new one.

export interface Migration { version: number; sql: string }

export const migrations: Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE arrays (
        name TEXT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        level INTEGER NOT NULL,
        layout TEXT NOT NULL,
        chunk INTEGER NOT NULL,
        raid_disks INTEGER NOT NULL,
        data_offset INTEGER NOT NULL,
        member_size INTEGER NOT NULL,
        members TEXT NOT NULL,            -- JSON MemberRecord[]
        throttle TEXT NOT NULL,           -- JSON Throttle
        revision INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE controllers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        lock_file TEXT NOT NULL,
        address TEXT,
        state TEXT NOT NULL CHECK (state IN ('live', 'stopped', 'dead')),
        started_at INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        ended_at INTEGER
      );

      CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        array_name TEXT,
        dataset TEXT NOT NULL,            -- JSON
        initiator INTEGER,                -- controller id; NULL until a live controller adopts it
        state TEXT NOT NULL CHECK (state IN ('RUNNING', 'PAUSED', 'COMPLETING', 'DONE', 'FAILED', 'CANCELLED')),
        reason TEXT,
        result TEXT,                      -- JSON
        max_attempts INTEGER NOT NULL,
        partitions_total INTEGER NOT NULL,
        partitions_done INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE INDEX tasks_state ON tasks (state);

      CREATE TABLE partitions (
        task_id INTEGER NOT NULL REFERENCES tasks (id),
        idx INTEGER NOT NULL,
        stripe_start INTEGER NOT NULL,
        stripe_end INTEGER NOT NULL,      -- exclusive
        instructions TEXT NOT NULL,       -- JSON
        state TEXT NOT NULL CHECK (state IN ('READY', 'IN_PROGRESS', 'COMPLETE', 'FAILED')),
        owner INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        checkpoint TEXT,                  -- JSON
        bytes INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        claimed_at INTEGER,
        updated_at INTEGER NOT NULL,
        completed_at INTEGER,
        PRIMARY KEY (task_id, idx)
      ) WITHOUT ROWID;
      CREATE INDEX partitions_state ON partitions (task_id, state, idx);
      CREATE INDEX partitions_owner ON partitions (owner) WHERE owner IS NOT NULL;

      CREATE TABLE region_leases (
        array_name TEXT NOT NULL,
        region INTEGER NOT NULL,
        holder INTEGER,                   -- controller id; NULL when free
        epoch INTEGER NOT NULL,           -- bumped on every grant
        wanted_by INTEGER,
        dirty INTEGER NOT NULL DEFAULT 0, -- write intent: parity may lag data
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (array_name, region)
      ) WITHOUT ROWID;
      CREATE INDEX region_leases_holder ON region_leases (holder) WHERE holder IS NOT NULL;
      CREATE INDEX region_leases_wanted ON region_leases (holder) WHERE wanted_by IS NOT NULL;

      CREATE TABLE resync_regions (
        array_name TEXT NOT NULL,
        region INTEGER NOT NULL,
        from_controller INTEGER,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (array_name, region)
      ) WITHOUT ROWID;

      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        controller INTEGER,
        actor TEXT NOT NULL,              -- 'controller 3', 'cli', ...
        kind TEXT NOT NULL,
        array_name TEXT,
        task_id INTEGER,
        partition_idx INTEGER,
        detail TEXT                       -- JSON
      );
    `,
  },
  {
    // One truth of the array's durable state: the md identity the superblocks are written from
    // (set name, creation time, kept features, devices known but absent), and what was last
    // written to the members (events and the canonical state), so the superblocks follow the
    // record in one order whoever changes it.
    version: 2,
    sql: `
      ALTER TABLE arrays ADD COLUMN md TEXT NOT NULL DEFAULT '{}';  -- JSON MdIdentity
      CREATE TABLE superblocks (
        array_name TEXT PRIMARY KEY,
        events INTEGER NOT NULL,
        state TEXT NOT NULL,              -- JSON MdState last written to the members
        written_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];
