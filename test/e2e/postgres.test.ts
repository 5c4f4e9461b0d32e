// test/helpers/postgres.ts: a PostgreSQL cluster of Debian's server started in a temp dir answers
// psql over its unix socket (and TCP where asked), and is gone once stopped.
import fs from 'node:fs';
import t from 'tap';
import { postgresBin, startPostgres } from '../helpers/postgres.js';
import { runTool } from '../../harness/run-tool.js';

t.test('PostgreSQL from Debian in a temp dir: start, select 1, stop', { skip: !postgresBin() && 'needs Debian\'s postgresql package' }, async (tt) => {
  const pg = await startPostgres(tt, { listen: '127.0.0.1' });
  const one = await pg.psql('select 1');
  tt.equal(one.stdout.trim(), '1', 'psql -c \'select 1\' over the unix socket answers 1');
  const version = await pg.psql('show server_version_num');
  tt.ok(Number(version.stdout.trim()) >= 150000, `the server is PostgreSQL 15 or newer (${version.stdout.trim()})`);
  const tcp = await runTool('psql', ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '-d', 'postgres', '-c', 'select 2']);
  tt.equal(tcp.stdout.trim(), '2', 'and over TCP on the address asked for');
  const byUri = await runTool('psql', ['-X', '-A', '-t', pg.uri(), '-c', 'select 3']);
  tt.equal(byUri.stdout.trim(), '3', `uri() is a libpq URI that connects (${pg.uri()})`);
  tt.ok(fs.existsSync(`${pg.socketDir}/.s.PGSQL.${pg.port}`), 'the socket lives in the temp dir');
  await pg.stop();
  const after = await runTool('psql', ['-X', '-h', pg.socketDir, '-p', String(pg.port), '-U', pg.user, '-c', 'select 1'], { allowFailure: true });
  tt.not(after.code, 0, 'after stop nothing answers');
  tt.notOk(fs.existsSync(`${pg.socketDir}/.s.PGSQL.${pg.port}`), 'and the socket is gone');
});
