// The PostgreSQL coordination backend's door.
export { PgBackend, type PgBackendOptions } from './backend.js';
export { PgChangeListener, type ListenerState } from './listener.js';
export { isPostgresUri, openPg } from './open.js';
export { pgOps, pgWorkOps, type GrantedLease } from './ops.js';
export type { PgController } from './controllers.js';
