// Where the coordination object lives, parsed once: the default, a postgres:// URI with its T,
// refusals, and passwords kept out of every message.
import t from 'tap';
import { coordinationTarget, describeTarget, redactUri } from '../../lib/coordination/target.js';

t.test('targets', async (t) => {
  t.same(coordinationTarget('/s'), { kind: 'sqlite', stateDir: '/s' }, 'absent: the state directory');
  t.same(coordinationTarget('/s', 'postgres://u@h/db', 8000), { kind: 'postgres', uri: 'postgres://u@h/db', deadAfterMs: 8000 });
  t.throws(() => coordinationTarget('/s', 'mysql://u:secret@h/db'), { code: 'EINVAL', message: /not a coordination database/ });
  t.notMatch((() => { try { coordinationTarget('/s', 'mysql://u:secret@h/db'); } catch (e) { return (e as Error).message; } return ''; })(), /secret/, 'the refusal hides the password');
  t.throws(() => coordinationTarget('/s', 'postgres://h/db', 500), { code: 'EINVAL', message: /--dead-after/ }, 'a T below the least is refused');
});

t.test('passwords never shown', async (t) => {
  const cases: [string, string][] = [
    ['postgres://u:pw@h:5432/db', 'postgres://u:***@h:5432/db'],
    ['postgres://u:p@ss@h/db', 'postgres://u:***@h/db'],
    ['postgres://u:a/b@h/db', 'postgres://u:***@h/db'],
    ['postgres://u@h/db', 'postgres://u@h/db'],
    ['postgresql://h/db?sslmode=require&password=x#f', 'postgresql://h/db?sslmode=require&password=***#f'],
    ['postgres://u:pw@h/db?application_name=a@b', 'postgres://u:***@h/db?application_name=a@b'],
  ];
  for (const [uri, shown] of cases) t.equal(redactUri(uri), shown, uri.replace(/:[^@/:]*@/, ':...@'));
  t.equal(describeTarget({ kind: 'postgres', uri: 'postgres://u:pw@h/db', deadAfterMs: 5000 }), 'PostgreSQL at postgres://u:***@h/db');
});
