#!/usr/bin/env node
// nbdraid admin CLI: parse, call lib, print (human or --json). Each verb lives in cmd/verbs/.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { databaseError, isSqliteError } from '../lib/coordination/db-check.js';
import { databasePath } from '../lib/coordination/db.js';
import { pgError, isPgError } from '../lib/coordination/pg-error.js';
import { DEFAULT_DEAD_AFTER_MS, coordinationTarget, describeTarget } from '../lib/coordination/target.js';
import { NbdraidError } from '../lib/errors.js';
import { type LogFormat, formatLogLine } from '../lib/log.js';
import { setRemoteMemberTimeout } from '../lib/raid/members.js';
import { verbs } from './verbs/index.js';

// Output piped into a reader that stopped reading (`nbdraid events | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** The --state of this run, for errors that SQLite raises after the database was opened. */
let stateDir = process.env.NBDRAID_STATE ?? './data';
/** The --coordination of this run (redacted when shown), for errors PostgreSQL raises. */
let coordination = process.env.NBDRAID_COORDINATION;
/** The --log-format of a server verb, so that its fatal error is a line of that format too. */
let logFormat: LogFormat = 'human';

async function main(): Promise<void> {
  let cli = yargs(hideBin(process.argv))
    .scriptName('nbdraid')
    .usage('$0 <verb> [options]\n\nRAID-5 over NBD, served by cooperating controller processes.')
    .option('state', {
      type: 'string',
      describe: 'state directory holding the coordination database',
      default: process.env.NBDRAID_STATE ?? './data',
      global: true,
    })
    .option('member-timeout', {
      type: 'number',
      describe: 'seconds a remote (nbd://) member may leave a request unanswered before it fails',
      default: Number(process.env.NBDRAID_MEMBER_TIMEOUT ?? 30),
      global: true,
    })
    .option('coordination', {
      type: 'string',
      describe: 'coordination database: postgres://USER@HOST:PORT/DB for controllers on several hosts (default: the SQLite database in --state)',
      default: process.env.NBDRAID_COORDINATION,
      defaultDescription: '$NBDRAID_COORDINATION, else SQLite in --state',
      global: true,
    })
    .option('dead-after', {
      type: 'number',
      describe: 'PostgreSQL only: seconds after its last heartbeat that a controller counts as dead and its work passes on',
      default: Number(process.env.NBDRAID_DEAD_AFTER ?? DEFAULT_DEAD_AFTER_MS / 1000),
      global: true,
    })
    .middleware((argv) => {
      stateDir = argv.state;
      coordination = argv.coordination;
      // Checked once for every verb (a bad scheme or bound changes nothing); controllers started by `cluster` inherit both.
      const deadAfter = argv['dead-after'];
      if (!(Number.isFinite(deadAfter) && deadAfter > 0)) throw new NbdraidError('EINVAL', '--dead-after', `must be a positive number of seconds, got ${deadAfter}`);
      coordinationTarget(argv.state, argv.coordination, deadAfter * 1000);
      if (argv.coordination !== undefined) process.env.NBDRAID_COORDINATION = argv.coordination;
      process.env.NBDRAID_DEAD_AFTER = String(argv['dead-after']);
      const seconds = argv['member-timeout'];
      if (!(seconds > 0)) throw new NbdraidError('EINVAL', '--member-timeout', `must be a positive number of seconds, got ${seconds}`);
      setRemoteMemberTimeout(seconds * 1000);
      // Controllers started by `cluster` inherit it.
      process.env.NBDRAID_MEMBER_TIMEOUT = String(argv['member-timeout']);
      if (argv['log-format'] === 'json') logFormat = 'json';
    })
    .strict()
    .demandCommand(1, 'name a verb; see nbdraid --help')
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`nbdraid: ${msg}\nRun 'nbdraid --help' for usage.\n`);
      process.exit(2);
    });
  for (const verb of verbs) cli = cli.command(verb);
  await cli.parseAsync();
}

main().catch((err: unknown) => {
  if (isSqliteError(err)) err = databaseError(databasePath(stateDir), err);
  else if (isPgError(err)) err = pgError(coordination ? describeTarget({ kind: 'postgres', uri: coordination, deadAfterMs: 0 }) : 'PostgreSQL', err);
  if (err instanceof NbdraidError) {
    process.stderr.write(formatLogLine(logFormat, { event: 'error', level: 'error', message: err.message, fields: { code: err.code } }));
    process.exit(1);
  }
  process.stderr.write(`nbdraid: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
