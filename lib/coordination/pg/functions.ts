// The hot transitions as server-side functions (claim: the lowest READY partition of the oldest
// RUNNING task, locked FOR UPDATE SKIP LOCKED so concurrent claimers pass each other's rows): a claim and a completion each run as one
// statement, hence one round trip and one implicit transaction (NOTIFY included), instead of
// a BEGIN, five statements and a COMMIT. Refusals raise SQLSTATE NB001 with 'CODE|context|message'.

export const FUNCTIONS_SQL = `
  CREATE FUNCTION nbdraid_refuse(code text, ctx text, msg text) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION USING ERRCODE = 'NB001', MESSAGE = code || '|' || ctx || '|' || msg; END $$;

  CREATE FUNCTION nbdraid_require_live(me bigint) RETURNS void LANGUAGE plpgsql AS $$
  DECLARE s text;
  BEGIN
    SELECT state INTO s FROM controllers WHERE id = me;
    IF s IS DISTINCT FROM 'live' THEN
      PERFORM nbdraid_refuse('ESTALE', 'controller ' || me, 'is ' || coalesce(s, 'unknown') || '; register again before working');
    END IF;
  END $$;

  CREATE FUNCTION nbdraid_claim(me bigint, f_task bigint, f_kinds text[], f_array text)
    RETURNS SETOF partitions LANGUAGE plpgsql AS $$
  DECLARE p partitions; t tasks;
  BEGIN
    PERFORM nbdraid_require_live(me);
    -- Task by task (oldest first), then that task's lowest READY index through the partial
    -- index: a join ordered across both would sort every READY partition on each claim.
    FOR t IN SELECT * FROM tasks k WHERE k.state = 'RUNNING' AND k.partitions_done < k.partitions_total
        AND (f_task IS NULL OR k.id = f_task) AND (f_kinds IS NULL OR k.kind = ANY(f_kinds)) AND (f_array IS NULL OR k.array_name = f_array)
        ORDER BY k.id LOOP
      SELECT * INTO p FROM partitions WHERE task_id = t.id AND state = 'READY' ORDER BY idx LIMIT 1 FOR UPDATE SKIP LOCKED;
      EXIT WHEN FOUND;
    END LOOP;
    IF p.task_id IS NULL THEN RETURN; END IF;
    UPDATE partitions SET state = 'IN_PROGRESS', owner = me, claimed_at = nbdraid_now_ms(), updated_at = nbdraid_now_ms()
      WHERE task_id = p.task_id AND idx = p.idx RETURNING * INTO p;
    INSERT INTO events (at, controller, actor, kind, array_name, task_id, partition_idx)
      VALUES (nbdraid_now_ms(), me, 'controller ' || me, 'partition.claimed', t.array_name, t.id, p.idx);
    PERFORM pg_notify('nbdraid_change', '');
    RETURN NEXT p;
  END $$;

  CREATE FUNCTION nbdraid_complete(me bigint, f_task bigint, f_idx integer, delta bigint) RETURNS boolean LANGUAGE plpgsql AS $$
  DECLARE p partitions; t tasks; ctx text := 'task ' || f_task || ' partition ' || f_idx;
  BEGIN
    PERFORM nbdraid_require_live(me);
    SELECT * INTO p FROM partitions WHERE task_id = f_task AND idx = f_idx FOR UPDATE;
    IF NOT FOUND THEN PERFORM nbdraid_refuse('ENOENT', ctx, 'no such partition'); END IF;
    SELECT * INTO t FROM tasks WHERE id = f_task;
    IF p.state <> 'IN_PROGRESS' THEN PERFORM nbdraid_refuse('ESTALE', ctx, 'is ' || p.state || ', not IN_PROGRESS; cannot complete'); END IF;
    IF p.owner IS DISTINCT FROM me THEN
      PERFORM nbdraid_refuse('EPERM', ctx, 'is owned by controller ' || coalesce(p.owner::text, 'null') || ', not ' || me || '; cannot complete');
    END IF;
    IF t.state IN ('CANCELLED', 'FAILED') THEN
      PERFORM nbdraid_refuse('ECANCELED', ctx, 'task is ' || t.state || coalesce(' (' || t.reason || ')', '') || '; release the partition');
    END IF;
    UPDATE partitions SET state = 'COMPLETE', owner = NULL, bytes = bytes + delta, updated_at = nbdraid_now_ms(), completed_at = nbdraid_now_ms()
      WHERE task_id = f_task AND idx = f_idx;
    UPDATE tasks SET partitions_done = partitions_done + 1, updated_at = nbdraid_now_ms() WHERE id = f_task RETURNING * INTO t;
    INSERT INTO events (at, controller, actor, kind, array_name, task_id, partition_idx)
      VALUES (nbdraid_now_ms(), me, 'controller ' || me, 'partition.completed', t.array_name, t.id, f_idx);
    IF t.partitions_done = t.partitions_total THEN
      INSERT INTO events (at, controller, actor, kind, array_name, task_id)
        VALUES (nbdraid_now_ms(), me, 'controller ' || me, 'task.partitions-complete', t.array_name, t.id);
    END IF;
    PERFORM pg_notify('nbdraid_change', '');
    RETURN t.partitions_done = t.partitions_total;
  END $$;
`;
