// Change notification on PostgreSQL: every committed transition NOTIFYs one channel (tx.ts); a
// dedicated connection LISTENs and runs the subscribers, in place of polling data_version. A lost
// connection runs them too (something may have changed unseen) and is reported by `state`.
import pg from 'pg';
import { CHANGE_CHANNEL } from './tx.js';

export type ChangeListener = () => void;
export type ListenerState = 'listening' | 'lost' | 'closed';

export class PgChangeListener {
  private readonly listeners = new Set<ChangeListener>();
  private current: ListenerState = 'listening';

  private constructor(private readonly client: pg.Client) {
    client.on('notification', (n) => { if (n.channel === CHANGE_CHANNEL) this.notify(); });
    const lost = (): void => {
      if (this.current !== 'listening') return;
      this.current = 'lost';
      this.notify();
    };
    client.on('error', lost);
    client.on('end', lost);
  }

  /** `timeoutMs`: give up connecting after this long (a host cut off never answers). */
  static async open(uri: string, timeoutMs = 0): Promise<PgChangeListener> {
    const client = new pg.Client({ connectionString: uri, connectionTimeoutMillis: timeoutMs, keepAlive: true });
    client.on('error', () => undefined); // until the listener's own handler is on
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    return new PgChangeListener(client);
  }

  get state(): ListenerState {
    return this.current;
  }

  subscribe(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** Runs the subscribers now, as after a commit of our own. */
  notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.listeners.clear();
    await this.client.end().catch(() => undefined);
  }
}
