// PostgreSQL for tests: the throw-away cluster of harness/postgres.ts (benchmarks start it too).
export { type Postgres, postgresBin, startPostgres } from '../../harness/postgres.js';
