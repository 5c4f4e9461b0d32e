// Versioned schema of the PostgreSQL coordination database: the ideas of ../schema.ts (controllers,
// tasks, partitions, leases, resync, events) with what several hosts need instead of a flock: a
// controller's heartbeat from the database clock and an epoch from a sequence, and a lease epoch
// from a sequence on every grant. Times the records show are milliseconds since 1970 (bigint), as
// in SQLite, so the same row conversions apply; JSON is kept as text for the same reason.

import { FUNCTIONS_SQL } from './functions.js';

export interface PgMigration { version: number; sql: string }

export const pgMigrations: PgMigration[] = [
  {
    version: 1,
    sql: `
      CREATE FUNCTION nbdraid_now_ms() RETURNS bigint LANGUAGE sql STABLE
        AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;
      CREATE SEQUENCE controller_epoch;
      CREATE SEQUENCE lease_epoch;

      CREATE TABLE arrays (
        name text PRIMARY KEY,
        uuid text NOT NULL UNIQUE,
        record text NOT NULL,             -- JSON of the array record
        revision bigint NOT NULL,
        updated_at bigint NOT NULL
      );

      CREATE TABLE controllers (
        id bigserial PRIMARY KEY,
        epoch bigint NOT NULL DEFAULT nextval('controller_epoch'),
        pid integer NOT NULL,
        host text NOT NULL,
        address text,
        state text NOT NULL CHECK (state IN ('live', 'stopped', 'dead')),
        started_at bigint NOT NULL,
        heartbeat timestamptz NOT NULL DEFAULT now(),  -- the database clock only: hosts' clocks may differ
        heartbeat_at bigint NOT NULL,
        ended_at bigint
      );
      CREATE INDEX controllers_live ON controllers (heartbeat) WHERE state = 'live';

      CREATE TABLE tasks (
        id bigserial PRIMARY KEY,
        kind text NOT NULL,
        array_name text,
        dataset text NOT NULL,
        initiator bigint,
        state text NOT NULL CHECK (state IN ('RUNNING', 'PAUSED', 'COMPLETING', 'DONE', 'FAILED', 'CANCELLED')),
        reason text,
        result text,
        max_attempts integer NOT NULL,
        partitions_total integer NOT NULL,
        partitions_done integer NOT NULL DEFAULT 0,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        finished_at bigint
      );
      CREATE INDEX tasks_state ON tasks (state);

      CREATE TABLE partitions (
        task_id bigint NOT NULL REFERENCES tasks (id),
        idx integer NOT NULL,
        stripe_start bigint NOT NULL,
        stripe_end bigint NOT NULL,
        instructions text NOT NULL,
        state text NOT NULL CHECK (state IN ('READY', 'IN_PROGRESS', 'COMPLETE', 'FAILED')),
        owner bigint,
        attempts integer NOT NULL DEFAULT 0,
        checkpoint text,
        bytes bigint NOT NULL DEFAULT 0,
        error text,
        claimed_at bigint,
        updated_at bigint NOT NULL,
        completed_at bigint,
        PRIMARY KEY (task_id, idx)
      );
      CREATE INDEX partitions_ready ON partitions (task_id, idx) WHERE state = 'READY';
      CREATE INDEX partitions_owner ON partitions (owner) WHERE owner IS NOT NULL;

      CREATE TABLE region_leases (
        array_name text NOT NULL,
        region integer NOT NULL,
        holder bigint,
        epoch bigint NOT NULL,            -- nextval('lease_epoch') at every grant
        wanted_by bigint,
        dirty boolean NOT NULL DEFAULT false,
        updated_at bigint NOT NULL,
        PRIMARY KEY (array_name, region)
      );
      CREATE INDEX region_leases_holder ON region_leases (holder) WHERE holder IS NOT NULL;

      CREATE TABLE resync_regions (
        array_name text NOT NULL,
        region integer NOT NULL,
        from_controller bigint,
        recorded_at bigint NOT NULL,
        PRIMARY KEY (array_name, region)
      );

      CREATE TABLE events (
        id bigserial PRIMARY KEY,
        at bigint NOT NULL,
        controller bigint,
        actor text NOT NULL,
        kind text NOT NULL,
        array_name text,
        task_id bigint,
        partition_idx integer,
        detail text
      );
    `,
  },
  { version: 2, sql: FUNCTIONS_SQL },
  {
    // The array's record as SQLite keeps it (column for column, so ../arrays.ts converts both),
    // replacing the placeholder of version 1, which nothing wrote; and what the members'
    // superblocks were last written with.
    version: 3,
    sql: `
      DROP TABLE arrays;
      CREATE TABLE arrays (
        name text PRIMARY KEY,
        uuid text NOT NULL UNIQUE,
        level integer NOT NULL,
        layout text NOT NULL,
        chunk integer NOT NULL,
        raid_disks integer NOT NULL,
        data_offset bigint NOT NULL,
        member_size bigint NOT NULL,
        members text NOT NULL,            -- JSON MemberRecord[]
        throttle text NOT NULL,           -- JSON Throttle
        md text NOT NULL DEFAULT '{}',    -- JSON MdIdentity
        revision bigint NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      );
      CREATE TABLE superblocks (
        array_name text PRIMARY KEY,
        events bigint NOT NULL,
        state text NOT NULL,              -- JSON MdState last written to the members
        written_at bigint NOT NULL
      );
      CREATE INDEX events_array ON events (array_name, id);
      CREATE INDEX events_task ON events (task_id, id);
    `,
  },
  {
    // Each controller is judged by the bound it fences itself by: its own T, kept on its row.
    // Controllers started with different --dead-after cannot then reap one another early.
    version: 4,
    sql: 'ALTER TABLE controllers ADD COLUMN dead_after_ms bigint',
  },
];
